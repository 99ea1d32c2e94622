"""Planted rows: distinctive texts with labelled queries, to measure search quality.

Each plant's ``query`` shares meaning, not keywords, with its row ("refund for a damaged
order" vs "package arrived crushed ... full refund"): a hit in the top k says the
embedding search works, not that a substring matched.  ``queries`` adds labelled queries
of other types (:data:`QUERY_TYPES`) for ``benchmarks/bench_quality.py``: an exact phrase
copied from the row, Japanese rows with Japanese phrases and paraphrases, cross-lingual
queries (English for a Japanese row and back), ids/codes as users type them (any case,
full-width), and :data:`NO_ANSWER` queries that nothing in the data answers.
"""

from __future__ import annotations

from dataclasses import dataclass

QUERY_TYPES = (
    "exact_phrase",  # English words copied from the row
    "paraphrase",  # English, same meaning, other words
    "ja_exact_phrase",  # Japanese characters copied from a Japanese row
    "ja_paraphrase",  # Japanese, same meaning, other words
    "cross_lingual",  # English query for a Japanese row, or Japanese for an English one
    "code",  # an id or code from the row, as a user types it
)


@dataclass(frozen=True)
class Plant:
    schema: str
    table: str
    values: dict[str, str]  # column -> text written into the planted row
    main: str  # the column whose text is reported as "text"
    query: str  # the headline query (a paraphrase in the row's language)
    queries: tuple[tuple[str, str], ...] = ()  # more (type, query) pairs
    lang: str = "en"

    def labelled(self) -> list[tuple[str, str]]:
        """Every (type, query) of this plant, the headline query first."""
        first = ("paraphrase" if self.lang == "en" else "ja_paraphrase", self.query)
        return [first, *self.queries]


def _p(schema: str, table: str, main: str, query: str, *more: tuple[str, str], **values: str) -> Plant:
    return Plant(schema, table, values, main, query, tuple(more))


def _ja(schema: str, table: str, main: str, query: str, *more: tuple[str, str], **values: str) -> Plant:
    return Plant(schema, table, values, main, query, tuple(more), lang="ja")


def _x(phrase: str) -> tuple[str, str]:
    return ("exact_phrase", phrase)


def _jx(phrase: str) -> tuple[str, str]:
    return ("ja_exact_phrase", phrase)


def _cl(query: str) -> tuple[str, str]:
    return ("cross_lingual", query)


def _code(query: str) -> tuple[str, str]:
    return ("code", query)


PLANTS: tuple[Plant, ...] = (
    _p("support", "tickets", "description", "refund for a damaged order", _x("ceramic mug inside was shattered"), _cl("壊れた商品の返金"),
       subject="Box crushed in transit",
       description="The package arrived crushed and the ceramic mug inside was shattered. "
                   "The customer asks for a full refund for the damaged order."),
    _p("support", "tickets", "description", "user locked out because the password reset email never arrives", _x("not even in spam"),
       subject="Cannot get back into my account",
       description="I requested a new password three times but no email ever shows up, "
                   "not even in spam, so I still cannot sign in."),
    _p("support", "tickets", "description", "billed twice for the same subscription", _x("two identical payments"), _cl("同じ月額料金が二重に請求された"),
       subject="Duplicate charge",
       description="My credit card statement shows two identical payments for this month's "
                   "plan renewal. Please reverse one of them."),
    _p("support", "tickets", "description", "mobile app crashes at startup after the update", _x("shuts down right after the splash screen"),
       subject="Android app closes immediately",
       description="Since installing the latest version, the Android app shuts down right "
                   "after the splash screen every time I open it."),
    _p("support", "ticket_comments", "body", "shipment held at customs in the Netherlands", _x("pallet of standing desks"), _cl("オランダの税関で荷物が止まっている"),
       body="Escalating to the warehouse team: the pallet of standing desks has been stuck "
            "with the border authorities in Rotterdam since Monday."),
    _p("support", "ticket_comments", "body", "incorrect tax ID on the bill", _x("wrong VAT registration number"),
       body="Customer says the invoice lists the wrong VAT registration number for their "
            "company in Germany and needs a corrected copy for accounting."),
    _p("orders", "orders", "notes", "deliver to the neighbor if nobody is home", _x("hand the parcel to the people living next door"), _cl("不在なら隣の家に預けて"),
       notes="If no one answers the door, please hand the parcel to the people living "
             "next door at number 12."),
    _p("orders", "orders", "notes", "birthday gift wrapping with a card", _x("handwritten card"),
       notes="Customer requested gift wrapping and a handwritten card, it is a present for "
             "her grandmother turning eighty."),
    _p("orders", "orders", "notes", "evening delivery time window only", _x("recipient works late shifts"),
       notes="Only bring this after 6pm, the recipient works late shifts and nobody can "
             "sign during the day."),
    _p("orders", "orders", "notes", "nut allergy, do not add food samples", _x("severely allergic to peanuts"), _cl("ピーナッツアレルギーなのでお菓子を入れないで"),
       notes="Warning: the recipient is severely allergic to peanuts, please do not put any "
             "snack samples in the box."),
    _p("orders", "Order Details", "gift_message", "present for someone who just got a dog", _x("These chew toys"),
       gift_message="Congratulations on your new puppy! These chew toys should keep him busy."),
    _p("chat", "messages", "body", "disk full on the staging server overnight", _x("ran out of storage space again at 3am"), _cl("ステージングサーバーのディスクがいっぱい"),
       body="the staging database ran out of storage space again at 3am, can someone bump the volume size?"),
    _p("chat", "messages", "body", "goodbye party for a colleague who is leaving", _x("Maria's farewell lunch"),
       body="who's bringing the cake for Maria's farewell lunch on Friday? it's her last week with us"),
    _p("chat", "messages", "body", "VPN certificate about to expire", _x("remote access gateway"),
       body="heads up: the certificate for the remote access gateway runs out tomorrow, "
            "people working from home will be cut off unless IT renews it"),
    _p("chat", "messages", "body", "bad gateway errors during checkout", _x("returning 502s"),
       body="the load balancer is returning 502s for roughly five percent of payment requests on the shop"),
    _p("chat", "messages", "body", "food order for the team lunch", _x("two margherita pizzas"),
       body="lunch order for the team: two margherita pizzas, a large caesar salad and garlic bread"),
    _p("catalog", "product_reviews", "review_text", "earbuds broke and won't charge", _x("left earpiece is completely dead"), _cl("イヤホンが充電できなくなった"),
       title="Stopped working after a week",
       review_text="The wireless headphones stopped charging after only seven days; the left "
                   "earpiece is completely dead."),
    _p("catalog", "product_reviews", "review_text", "waterproof tent that stays dry in heavy rain", _x("dry through a thunderstorm"),
       title="Perfect for camping",
       review_text="Kept the whole family dry through a thunderstorm in the mountains and it "
                   "sets up in five minutes."),
    _p("catalog", "product_reviews", "review_text", "sneakers run small", _x("pinch my toes"),
       title="Order one size up",
       review_text="I bought my usual size but these running shoes are clearly too tight and pinch my toes."),
    _p("catalog", "product_reviews", "review_text", "very noisy appliance", _x("coffee grinder makes such a racket"),
       title="So loud",
       review_text="This coffee grinder makes such a racket that it wakes up everyone in the house at 6am."),
    # Japanese rows: Japanese phrase and paraphrase queries, and an English (cross-lingual) one.
    _ja("support", "tickets", "description", "届いた炊飯器が動かない",
        _jx("電源ボタンを押しても反応がありません"), _cl("rice cooker does not turn on"),
        subject="炊飯器の初期不良",
        description="昨日届いた炊飯器ですが、電源ボタンを押しても反応がありません。交換をお願いします。"),
    _ja("support", "tickets", "description", "クレジットカードの引き落としが二回あった",
        _jx("同じ金額が二重に引き落とされています"), _cl("my card was charged twice"),
        subject="二重請求について",
        description="今月の明細を確認したところ、同じ金額が二重に引き落とされています。一件の取り消しをお願いします。"),
    _ja("support", "ticket_comments", "body", "倉庫の在庫数がシステムと合わない",
        _jx("棚卸しの結果と在庫管理システムの数字"), _cl("inventory count does not match the system"),
        body="大阪倉庫の棚卸しの結果と在庫管理システムの数字が三十個ずれています。原因を調査中です。"),
    _ja("support", "ticket_comments", "body", "台風の影響で配達が遅れる",
        _jx("台風の接近により九州方面の配送"), _cl("typhoon delays deliveries"),
        body="台風の接近により九州方面の配送が二日ほど遅れる見込みです。お客様へ連絡済みです。"),
    _ja("orders", "orders", "notes", "マンションの宅配ボックスに入れてほしい",
        _jx("宅配ボックスに入れておいて"), _cl("put it in the parcel locker of the apartment"),
        notes="日中は留守にしているので、マンション一階の宅配ボックスに入れておいてください。"),
    _ja("orders", "orders", "notes", "贈り物なので値段がわからないようにしてほしい",
        _jx("金額の記載された納品書は同封しないで"), _cl("gift, do not include the price"),
        notes="母の誕生日プレゼントなので、金額の記載された納品書は同封しないでください。"),
    _ja("orders", "Order Details", "gift_message", "合格のお祝い",
        _jx("志望校合格おめでとう"), _cl("congratulations on passing the entrance exam"),
        gift_message="志望校合格おめでとう！春からの新生活を応援しています。"),
    _ja("chat", "messages", "body", "本番データベースの動作が遅い",
        _jx("本番環境のデータベースの応答がとても遅く"), _cl("production database is very slow"),
        body="本番環境のデータベースの応答がとても遅くなっています。誰かスロークエリを確認できますか？"),
    _ja("chat", "messages", "body", "送別会のお店の予約",
        _jx("田中さんの送別会"), _cl("booking a restaurant for a farewell party"),
        body="来週金曜日の田中さんの送別会、駅前の居酒屋を十五名で予約しました。"),
    _ja("chat", "messages", "body", "証明書の期限切れでログインできない",
        _jx("SSL証明書の有効期限が切れて"), _cl("expired certificate breaks the login page"),
        body="SSL証明書の有効期限が切れてしまい、社内ポータルにログインできなくなっています。"),
    _ja("catalog", "product_reviews", "review_text", "掃除機の音がうるさい",
        _jx("夜は使えないほど音が大きい"), _cl("vacuum cleaner is too loud"),
        title="吸引力は満足",
        review_text="吸引力は十分ですが、夜は使えないほど音が大きいのが残念です。"),
    _ja("catalog", "product_reviews", "review_text", "傘がすぐ壊れた",
        _jx("強風で骨が二本折れて"), _cl("umbrella broke in the wind"),
        title="耐久性に難あり",
        review_text="買って一週間で、強風で骨が二本折れてしまいました。もう少し丈夫だと嬉しいです。"),
    # Ids and codes, as users type them: exact, lower case, full width, parts.
    _p("support", "tickets", "description", "return authorization for a faulty keyboard",
       _code("RMA-2024-77812"), _code("rma-2024-77812"), _x("keys stick after a week"),
       subject="Faulty keyboard",
       description="Return authorization RMA-2024-77812 approved: the keys stick after a week of use."),
    _p("orders", "orders", "notes", "replacement part for a broken lamp",
       _code("SKU-LMP-4471-BLK"), _code("LMP-4471"),
       notes="Send replacement shade SKU-LMP-4471-BLK, the original cracked in transit."),
    _ja("orders", "orders", "notes", "注文番号の問い合わせ",
        _code("JP-5531-0098"), _code("ＪＰ－５５３１－００９８"),
        notes="お客様から注文番号JP-5531-0098の配送状況について問い合わせがありました。"),
    _p("chat", "messages", "body", "incident on the payments service",
       _code("INC0049231"), _code("inc0049231"),
       body="opened INC0049231 for the payment timeouts, please add your findings there"),
    _p("support", "ticket_comments", "body", "firmware version that fixes the bug",
       _code("v2.14.3"), _code("2.14.3"),
       body="The crash is fixed in firmware v2.14.3, ask the customer to update and reboot."),
    _ja("catalog", "product_reviews", "review_text", "型番の違う部品が届いた",
        _code("KX-900B"), _code("ｋｘ－９００ｂ"), _cl("received the wrong model number"),
        title="型番違い",
        review_text="注文したのはKX-900Aなのに、届いたのはKX-900Bでした。交換の手続き中です。"),
)  # fmt: skip

# Queries that nothing planted or generated answers (the data has no such topic).
NO_ANSWER: tuple[str, ...] = (
    "volcanic eruption evacuation plan",
    "chess tournament results",
    "recipe for homemade kimchi",
    "satellite launch window",
    "orchestra rehearsal schedule",
    "ZQX-8812-ABC",
    "火山の噴火と避難計画",
    "将棋の対局結果",
    "宇宙ロケットの打ち上げ",
    "オーケストラの練習日程",
)
