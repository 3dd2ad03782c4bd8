"""Realistic crypto-support tickets (zh-CN and en) for the local demo."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random

DEMO_TICKETS: list[dict[str, Any]] = [
    {
        "requester": {"locale": "zh-CN", "timezone": "Asia/Shanghai", "tier": "vip"},
        "channel": "app",
        "subject": "USDT提现未到账",
        "description": "我昨天晚上提现了2500 USDT（TRC20），状态一直显示审核中，已经超过6小时了。",
        "crypto": {
            "asset": "USDT",
            "network": "TRC20",
            "amount": "2500",
            "withdrawal_id": "W-88213",
        },
    },
    {
        "requester": {"locale": "en", "timezone": "Europe/London"},
        "channel": "web",
        "subject": "Deposit not credited",
        "description": "I sent 0.5 ETH to my deposit address two hours ago, the explorer shows "
        "12 confirmations but my balance is still zero.",
        "crypto": {"asset": "ETH", "network": "ERC20", "amount": "0.5"},
    },
    {
        "requester": {"locale": "zh-CN", "timezone": "Asia/Shanghai"},
        "channel": "chat",
        "subject": "账号被盗，异地登录",
        "description": "收到异地登录提醒，不是我本人操作，谷歌验证也被改了，请马上冻结账号！",
    },
    {
        "requester": {"locale": "en", "timezone": "America/New_York"},
        "channel": "email",
        "subject": "Fake support asked for my wallet",
        "description": "Someone claiming to be your support on Telegram asked me to connect my "
        "wallet to a fake airdrop site and now my funds are gone.",
    },
    {
        "requester": {"locale": "zh-CN", "timezone": "Asia/Shanghai"},
        "channel": "app",
        "subject": "充错链了",
        "description": "我把USDT充到了BEP20地址，但是选的是ERC20网络，忘填标签了，能找回吗？",
        "crypto": {"asset": "USDT", "network": "BEP20", "amount": "300"},
    },
    {
        "requester": {"locale": "en", "timezone": "Asia/Singapore"},
        "channel": "web",
        "subject": "KYC verification rejected",
        "description": "My identity verification was rejected twice, the documents are valid.",
    },
    {
        "requester": {"locale": "zh-CN", "timezone": "Asia/Shanghai"},
        "channel": "community",
        "subject": "换手机后恢复钱包",
        "description": "换了新手机，忘记密码了，怎么恢复钱包？",
    },
    {
        "requester": {"locale": "en", "timezone": "Europe/Berlin"},
        "channel": "social",
        "subject": "Transfer failed, insufficient gas",
        "description": "My transfer failed with 'insufficient funds for gas' and the nonce seems "
        "stuck.",
        "crypto": {"asset": "ETH", "network": "ERC20"},
    },
]


def demo_ticket(seq: int, rng: random.Random) -> dict[str, Any]:
    template = rng.choice(DEMO_TICKETS)
    requester = {
        **template["requester"],
        "id": f"demo-user-{rng.randint(1, 50)}",
        "email": f"demo{seq}@example.com",
    }
    return {**template, "requester": requester}


# What a requester writes back, by language of the ticket.
DEMO_REPLIES = {
    "zh-CN": "谢谢，我刚刚又看了一下，还是没有到账。",
    "en": "Thanks for the quick answer. I checked again and it is still not there.",
}


def reply_by_email(original: EmailMessage, text: str, sender: str) -> EmailMessage:
    """What a mail client sends when its user presses Reply: their text above the quoted
    original, addressed to its Reply-To, threaded by In-Reply-To and References."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(original["Reply-To"] or original["From"])
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="mail.example.com")
    reply["Date"] = formatdate(localtime=False)
    if original["Message-ID"]:
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    body = original.get_body(preferencelist=("plain",))
    quoted_text = str(body.get_content()) if body is not None else ""
    quoted = "\n".join(f"> {line}" for line in quoted_text.splitlines())
    wrote = f"On {original['Date'] or 'an earlier day'}, {original['From']} wrote:"
    reply.set_content(f"{text}\n\n{wrote}\n{quoted}\n")
    return reply
