"""Sentence templates for the load-test generator, in English and Japanese.

Faker's lorem sentences alone read like word salad; load-test payloads look more like
short chat lines, delivery notes and ticket descriptions.  These templates are filled
with Faker values once per seed (see ``pool.py``) so row generation itself only samples.
Slots: {first} {name} {company} {city} {item} {color} {n} (an id) {small} (a count) {day} {time}
{sentence}.
"""

from __future__ import annotations

EN: dict[str, list[str]] = {
    "chat": [
        "{first}, can you check the {item} dashboard before the standup?",
        "deploy of build {n} to staging is done, smoke tests look green",
        "I'll be late today, train from {city} is delayed again",
        "has anyone seen the {color} {item} I left in meeting room {small}?",
        "pushing the hotfix for ticket #{n} now, please hold merges",
        "thanks {first}! that fixed it",
        "can we move the sync with {company} to {day} at {time}?",
        "reminder: quarterly planning starts {day}, bring your roadmap drafts",
        "the nightly export took {small} minutes, twice as long as last week",
        "who owns the {item} service? it is paging every few minutes",
        "{sentence}",
        "{sentence} {sentence}",
        "lol yes, {sentence}",
        "ok, merging after CI passes",
    ],
    "note": [
        "Leave at the front desk. {sentence}",
        "Customer called to confirm the delivery address in {city}.",
        "Ship with order #{n} to save on postage.",
        "Use the side entrance on {day}; {sentence}",
        "Invoice to {company}, attention {name}.",
        "Fragile: contains a {color} {item}. Handle with care.",
        "Customer asked for express shipping, paid the difference.",
        "Backordered item, customer agreed to wait {small} days.",
        "{sentence}",
        "Call {first} before delivery. {sentence}",
    ],
    "subject": [
        "Cannot log in after update",
        "Question about invoice #{n}",
        "{item} not working",
        "Wrong color delivered ({color} instead of black)",
        "Change delivery address to {city}",
        "Request to cancel subscription",
        "Discount code {n} rejected at checkout",
        "Missing item in order #{n}",
        "How do I export my data?",
        "Feedback about the {item}",
    ],
    "description": [
        "Hi, I ordered a {color} {item} on {day} and it has not shipped yet. {sentence}",
        "Since the last update the {item} page shows an error. {sentence} {sentence}",
        "Please update the billing contact for {company} to {name}.",
        "My order #{n} was supposed to arrive in {city} yesterday. {sentence}",
        "The checkout page keeps timing out when I use a gift card. {sentence}",
        "I would like to know if the {item} is compatible with older models. {sentence}",
        "{sentence} {sentence} {sentence}",
        "Hello, {sentence} Thanks, {first}",
    ],
    "comment": [
        "Reproduced on build {n}, assigning to the {item} team.",
        "Sent the customer a replacement label.",
        "Waiting for the customer to reply. {sentence}",
        "Refund of {small} USD issued, closing.",
        "Escalated to tier 2. {sentence}",
        "{first} from {company} confirmed the fix works.",
        "{sentence}",
    ],
    "product_name": [
        "{color} {item}",
        "{item} Pro {n}",
        "{company} {item}",
        "Compact {item}",
        "{item} ({color}, {small} pack)",
    ],
    "product_desc": [
        "A durable {color} {item} made for everyday use. {sentence}",
        "Our best-selling {item}, now {small}% lighter. {sentence}",
        "Designed by {company}. {sentence} {sentence}",
        "{sentence} Ships from {city}.",
    ],
    "review_title": [
        "Great value",
        "Does the job",
        "Not as described",
        "Love the {color} one",
        "Five stars for the {item}",
        "Returned it after {small} days",
        "Better than expected",
    ],
    "review_text": [
        "Bought this {item} for my kitchen and it works well. {sentence}",
        "Arrived quickly in {city}. {sentence} {sentence}",
        "The {color} finish scratches easily. {sentence}",
        "Used it every day for {small} weeks. {sentence}",
        "{sentence} Would buy again.",
        "{sentence} {sentence}",
    ],
    "gift": [
        "Happy birthday, {first}!",
        "Congratulations from all of us at {company}.",
        "Enjoy your new {item}!",
        "Merry Christmas and a happy new year.",
        "",
        "",
    ],
}

JA: dict[str, list[str]] = {
    "chat": [
        "{first}さん、スタンドアップの前に{item}のダッシュボードを確認してもらえますか？",
        "ビルド{n}のステージング環境へのデプロイが完了しました。",
        "{city}からの電車が遅れていて、少し遅刻します。",
        "チケット#{n}の修正をプッシュします。マージは少し待ってください。",
        "ありがとうございます！直りました。",
        "{day}の{time}に{company}との打ち合わせを移動できますか？",
        "{sentence}",
        "{sentence}{sentence}",
        "了解です。CIが通ったらマージします。",
    ],
    "note": [
        "受付に預けてください。{sentence}",
        "お客様から{city}の住所確認の電話がありました。",
        "注文#{n}と同梱で発送してください。",
        "請求書は{company}の{name}様宛てにお願いします。",
        "割れ物注意：{item}が入っています。",
        "{sentence}",
    ],
    "subject": [
        "アップデート後にログインできません",
        "請求書#{n}についての質問",
        "{item}が動作しません",
        "配送先を{city}に変更したい",
        "サブスクリプションの解約について",
        "注文#{n}の商品が足りません",
    ],
    "description": [
        "{day}に{item}を注文しましたが、まだ発送されていません。{sentence}",
        "前回のアップデート以降、エラーが表示されます。{sentence}{sentence}",
        "注文#{n}は昨日{city}に届く予定でした。{sentence}",
        "{sentence}{sentence}{sentence}",
        "お世話になっております。{sentence}よろしくお願いいたします。{name}",
    ],
    "comment": [
        "ビルド{n}で再現しました。担当チームに割り当てます。",
        "お客様に返品用ラベルを送付しました。",
        "お客様からの返信待ちです。{sentence}",
        "{small}円を返金し、クローズします。",
        "{sentence}",
    ],
    "product_name": ["{item}（{color}）", "{company}の{item}", "{item} プロ {n}"],
    "product_desc": [
        "毎日使える丈夫な{item}です。{sentence}",
        "{company}がデザインしました。{sentence}{sentence}",
        "{sentence}{city}から発送します。",
    ],
    "review_title": ["コスパ最高", "普通です", "説明と違う", "{item}に星5つ", "期待以上"],
    "review_text": [
        "キッチン用に{item}を買いました。{sentence}",
        "{city}にすぐ届きました。{sentence}{sentence}",
        "{small}週間毎日使っています。{sentence}",
        "{sentence}また買いたいです。",
    ],
    "gift": ["{first}さん、お誕生日おめでとう！", "いつもありがとうございます。", "", ""],
}

ITEMS_EN = [
    "coffee grinder", "desk lamp", "backpack", "water bottle", "keyboard", "monitor stand",
    "yoga mat", "blender", "office chair", "phone case", "notebook", "wireless mouse",
    "rain jacket", "toaster", "bike helmet", "usb hub", "frying pan", "bookshelf",
]  # fmt: skip
ITEMS_JA = [
    "コーヒーミル", "デスクライト", "リュック", "水筒", "キーボード", "ヨガマット",
    "ミキサー", "オフィスチェア", "スマホケース", "ノート", "マウス", "フライパン",
]  # fmt: skip
COLORS_EN = ["red", "navy", "black", "white", "olive", "grey", "teal", "orange"]
COLORS_JA = ["赤", "紺", "黒", "白", "緑", "灰色", "青", "オレンジ"]
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "next week", "tomorrow"]
DAYS_JA = ["月曜日", "火曜日", "水曜日", "木曜日", "金曜日", "来週", "明日"]
CATEGORIES = ["kitchen", "office", "outdoor", "electronics", "home", "sports", "apparel"]
STATUSES_ORDER = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]
STATUSES_TICKET = ["open", "pending", "solved", "closed"]
PRIORITIES = ["low", "normal", "high", "urgent"]
CURRENCIES = ["USD", "EUR", "JPY", "GBP"]
