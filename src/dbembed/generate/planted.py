"""Planted rows: distinctive texts with paraphrased queries, to measure search quality.

Each query shares meaning, not keywords, with its row ("refund for a damaged order" vs
"package arrived crushed ... full refund"), so a hit in the top k says the embedding
search works, not that a substring matched.  All English: the bundled MiniLM model is
English-only, and a Japanese pair would measure the model rather than dbembed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plant:
    schema: str
    table: str
    values: dict[str, str]  # column -> text written into the planted row
    main: str  # the column whose text is reported as "text"
    query: str


def _p(schema: str, table: str, main: str, query: str, **values: str) -> Plant:
    return Plant(schema, table, values, main, query)


PLANTS: tuple[Plant, ...] = (
    _p("support", "tickets", "description", "refund for a damaged order",
       subject="Box crushed in transit",
       description="The package arrived crushed and the ceramic mug inside was shattered. "
                   "The customer asks for a full refund for the damaged order."),
    _p("support", "tickets", "description", "user locked out because the password reset email never arrives",
       subject="Cannot get back into my account",
       description="I requested a new password three times but no email ever shows up, "
                   "not even in spam, so I still cannot sign in."),
    _p("support", "tickets", "description", "billed twice for the same subscription",
       subject="Duplicate charge",
       description="My credit card statement shows two identical payments for this month's "
                   "plan renewal. Please reverse one of them."),
    _p("support", "tickets", "description", "mobile app crashes at startup after the update",
       subject="Android app closes immediately",
       description="Since installing the latest version, the Android app shuts down right "
                   "after the splash screen every time I open it."),
    _p("support", "ticket_comments", "body", "shipment held at customs in the Netherlands",
       body="Escalating to the warehouse team: the pallet of standing desks has been stuck "
            "with the border authorities in Rotterdam since Monday."),
    _p("support", "ticket_comments", "body", "incorrect tax ID on the bill",
       body="Customer says the invoice lists the wrong VAT registration number for their "
            "company in Germany and needs a corrected copy for accounting."),
    _p("orders", "orders", "notes", "deliver to the neighbor if nobody is home",
       notes="If no one answers the door, please hand the parcel to the people living "
             "next door at number 12."),
    _p("orders", "orders", "notes", "birthday gift wrapping with a card",
       notes="Customer requested gift wrapping and a handwritten card, it is a present for "
             "her grandmother turning eighty."),
    _p("orders", "orders", "notes", "evening delivery time window only",
       notes="Only bring this after 6pm, the recipient works late shifts and nobody can "
             "sign during the day."),
    _p("orders", "orders", "notes", "nut allergy, do not add food samples",
       notes="Warning: the recipient is severely allergic to peanuts, please do not put any "
             "snack samples in the box."),
    _p("orders", "Order Details", "gift_message", "present for someone who just got a dog",
       gift_message="Congratulations on your new puppy! These chew toys should keep him busy."),
    _p("chat", "messages", "body", "disk full on the staging server overnight",
       body="the staging database ran out of storage space again at 3am, can someone bump the volume size?"),
    _p("chat", "messages", "body", "goodbye party for a colleague who is leaving",
       body="who's bringing the cake for Maria's farewell lunch on Friday? it's her last week with us"),
    _p("chat", "messages", "body", "VPN certificate about to expire",
       body="heads up: the certificate for the remote access gateway runs out tomorrow, "
            "people working from home will be cut off unless IT renews it"),
    _p("chat", "messages", "body", "bad gateway errors during checkout",
       body="the load balancer is returning 502s for roughly five percent of payment requests on the shop"),
    _p("chat", "messages", "body", "food order for the team lunch",
       body="lunch order for the team: two margherita pizzas, a large caesar salad and garlic bread"),
    _p("catalog", "product_reviews", "review_text", "earbuds broke and won't charge",
       title="Stopped working after a week",
       review_text="The wireless headphones stopped charging after only seven days; the left "
                   "earpiece is completely dead."),
    _p("catalog", "product_reviews", "review_text", "waterproof tent that stays dry in heavy rain",
       title="Perfect for camping",
       review_text="Kept the whole family dry through a thunderstorm in the mountains and it "
                   "sets up in five minutes."),
    _p("catalog", "product_reviews", "review_text", "sneakers run small",
       title="Order one size up",
       review_text="I bought my usual size but these running shoes are clearly too tight and pinch my toes."),
    _p("catalog", "product_reviews", "review_text", "very noisy appliance",
       title="So loud",
       review_text="This coffee grinder makes such a racket that it wakes up everyone in the house at 6am."),
)  # fmt: skip
