"""Labelled questions for the help-article retrieval benchmark (`bench_faq_retrieval`).

Each question is what a requester types into a ticket (subject and description in one,
typos, shorthand and mixed Chinese/English kept), with the facts the ticket carries: the
category the app's form or triage gives it (`other` when the requester picked nothing
useful), and the asset and network when the form asked. `answers` are the articles that
answer it, by topic: the article in the question's language is the right one
(`<topic>-en` or `<topic>-zh`).

Written by hand from the kinds of tickets DOMAIN.md describes; no question was changed
after the ranking was measured.
"""

# ruff: noqa: E501
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.intake.faq import Language


@dataclass(frozen=True)
class Question:
    text: str
    language: Language
    category: str | None
    asset: str | None
    network: str | None
    answers: tuple[str, ...]  # article topics: ids without the -en / -zh suffix

    def answer_ids(self) -> frozenset[str]:
        suffix = "zh" if self.language == "zh-CN" else "en"
        return frozenset(f"{topic}-{suffix}" for topic in self.answers)


TRC20 = "usdt-trc20-withdrawal-pending"
ERC20 = "erc20-withdrawal-pending"
BEP20 = "bep20-withdrawal-pending"
BTC = "btc-withdrawal-unconfirmed"
SOL = "sol-withdrawal-pending"
REVIEW = "withdrawal-under-review"
DEPOSIT = "deposit-not-credited"
MEMO = "deposit-missing-memo-tag"
WRONG_NET = "deposit-wrong-network"
GAS = "transfer-failed-gas-nonce"
FEES = "withdrawal-and-network-fees"
KYC = "kyc-verification-rejected"
TWO_FA = "lost-2fa-reset"
FROZEN = "account-frozen-risk-review"
FAKE = "fake-support-seed-phrase"
SCAM = "scam-report-funds-sent"
WALLET = "restore-self-custody-wallet"
DELIST = "token-delisting-withdraw"
P2P = "p2p-order-dispute"
API = "api-key-security"
TRADING = "futures-liquidation-orders"


def q(
    text: str,
    language: Language,
    category: str | None,
    *answers: str,
    asset: str | None = None,
    network: str | None = None,
) -> Question:
    return Question(text, language, category, asset, network, answers)


ZH: Language = "zh-CN"
EN: Language = "en"

# One question a line reads best.
# fmt: off
QUESTIONS: tuple[Question, ...] = (
    # --- withdrawals that have not arrived -------------------------------------------------
    q("USDT提现3小时了还没到账，TRC20", ZH, "withdrawal_delay", TRC20, asset="USDT", network="TRC20"),
    q("提币一直显示处理中 波场链的usdt 急用钱", ZH, "withdrawal_delay", TRC20, asset="USDT", network="TRON"),
    q("我从你们平台提了500u到imtoken，tronscan上查不到记录", ZH, "withdrawal_delay", TRC20, asset="USDT"),
    q("trc20提现没到", ZH, "withdrawal_delay", TRC20, network="TRC20"),
    q("提现成功了但是钱包没收到，交易哈希在波场浏览器显示成功", ZH, "withdrawal_delay", TRC20, REVIEW, asset="USDT", network="TRC20"),
    q("my usdt withdrawl is stuck for 2 hours on tron network pls help", EN, "withdrawal_delay", TRC20, asset="USDT", network="TRC20"),
    q("Withdrawal of 1200 USDT TRC20 still pending", EN, "withdrawal_delay", TRC20, asset="USDT", network="TRC20"),
    q("sent usdt to my trust wallet, not received yet. txid shows nothing on tronscan", EN, "withdrawal_delay", TRC20, asset="USDT"),
    q("hi, I withdrew USDT (TRC-20) yesterday and it never arrived in my Binance account", EN, "withdrawal_delay", TRC20, asset="USDT", network="TRC-20"),
    q("ETH提现很慢，一直pending", ZH, "withdrawal_delay", ERC20, asset="ETH", network="ERC20"),
    q("erc20的usdc提出去半天了，etherscan上看不到", ZH, "withdrawal_delay", ERC20, asset="USDC", network="ERC20"),
    q("以太坊网络提现卡住了，是不是gas太低", ZH, "withdrawal_delay", ERC20, GAS, asset="ETH", network="ETH"),
    q("ETH withdrawal pending for 40 min, etherscan says nothing", EN, "withdrawal_delay", ERC20, asset="ETH", network="ERC20"),
    q("Why is my ERC20 USDT withdrawal taking so long? network congested?", EN, "withdrawal_delay", ERC20, asset="USDT", network="ERC20"),
    q("withdrew usdc on ethereum, status processing since morning", EN, "withdrawal_delay", ERC20, asset="USDC", network="Ethereum"),
    q("BSC链提现BNB没到账", ZH, "withdrawal_delay", BEP20, asset="BNB", network="BSC"),
    q("bep20 usdt 提现到小狐狸钱包没收到，bscscan查不到", ZH, "withdrawal_delay", BEP20, asset="USDT", network="BEP20"),
    q("BNB smart chain withdrawal not received in metamask", EN, "withdrawal_delay", BEP20, asset="BNB", network="BSC"),
    q("bep20 withdraw not arrive after 1h", EN, "withdrawal_delay", BEP20, network="BEP20"),
    q("比特币提现一直未确认", ZH, "withdrawal_delay", BTC, asset="BTC", network="BTC"),
    q("BTC提币已经广播了，但是mempool里一直0确认", ZH, "withdrawal_delay", BTC, asset="BTC", network="Bitcoin"),
    q("My bitcoin withdrawal has 0 confirmations after 3 hours", EN, "withdrawal_delay", BTC, asset="BTC", network="BTC"),
    q("btc withdrawal unconfirmed, fee rate too low?", EN, "withdrawal_delay", BTC, FEES, asset="BTC"),
    q("SOL提现没到账，solscan上看不到", ZH, "withdrawal_delay", SOL, asset="SOL", network="SOL"),
    q("索拉纳链上的usdc提现到phantom钱包一直没到", ZH, "withdrawal_delay", SOL, asset="USDC", network="Solana"),
    q("Solana withdrawal not showing in Phantom wallet", EN, "withdrawal_delay", SOL, asset="SOL", network="SOL"),
    q("USDC (SPL) withdraw still not arrived, is token account needed?", EN, "withdrawal_delay", SOL, asset="USDC", network="SPL"),
    # --- withdrawals under review or suspended ----------------------------------------------
    q("提现一直审核中，为什么要审核", ZH, "withdrawal_delay", REVIEW),
    q("改了密码之后不能提现了，提示24小时限制", ZH, "account_security", REVIEW, FROZEN),
    q("提币显示风控审核，已经一天了", ZH, "withdrawal_delay", REVIEW, FROZEN),
    q("新地址提现被暂停了怎么办", ZH, "withdrawal_delay", REVIEW),
    q("My withdrawal says under review. How long does it take?", EN, "withdrawal_delay", REVIEW),
    q("withdrawals suspended for 24 hours after I changed my password?? why", EN, "account_security", REVIEW),
    q("withdrawal on hold - security check", EN, "withdrawal_delay", REVIEW),
    # --- deposits ------------------------------------------------------------------------
    q("充值没到账，已经过了一个小时", ZH, "deposit_missing", DEPOSIT),
    q("充币成功了但是余额没有增加，区块确认数已经够了", ZH, "deposit_missing", DEPOSIT),
    q("从别的交易所转过来的币一直没入账 txid已经提供", ZH, "deposit_missing", DEPOSIT, asset="USDT"),
    q("deposit not credited to my account", EN, "deposit_missing", DEPOSIT),
    q("I deposited ETH 2 hours ago, has 64 confirmations but balance still 0", EN, "deposit_missing", DEPOSIT, asset="ETH", network="ERC20"),
    q("my deposit hasnt arrived yet, here is the txid", EN, "deposit_missing", DEPOSIT),
    q("充值XRP忘记填写标签了", ZH, "deposit_missing", MEMO, asset="XRP", network="XRP"),
    q("转EOS的时候memo写错了，币没到账", ZH, "deposit_missing", MEMO, asset="EOS"),
    q("TON充值没有填备注 comment，怎么找回", ZH, "deposit_missing", MEMO, asset="TON", network="TON"),
    q("forgot destination tag when depositing XRP", EN, "deposit_missing", MEMO, asset="XRP", network="XRP"),
    q("Sent XLM without memo, deposit missing", EN, "deposit_missing", MEMO, asset="XLM"),
    q("ATOM deposit wrong memo pls recover", EN, "deposit_missing", MEMO, asset="ATOM", network="ATOM"),
    q("充值选错网络了，把ERC20的USDT充到了TRC20地址", ZH, "deposit_missing", WRONG_NET, asset="USDT", network="ERC20"),
    q("USDT转错链了，BSC转到了ETH地址 能找回吗", ZH, "deposit_missing", WRONG_NET, asset="USDT", network="BEP20"),
    q("我用bep20网络充值的但是平台只支持erc20，钱没了", ZH, "deposit_missing", WRONG_NET, asset="USDT"),
    q("sent USDT on wrong network (BEP20 instead of TRC20), can you recover?", EN, "deposit_missing", WRONG_NET, asset="USDT", network="BEP20"),
    q("deposited to the wrong chain, unsupported network", EN, "deposit_missing", WRONG_NET),
    q("I chose Solana but the address was for ERC20 usdc", EN, "transfer_failed", WRONG_NET, asset="USDC", network="SOL"),
    # --- failed transfers, gas, fees -----------------------------------------------------
    q("转账失败 提示gas不足", ZH, "transfer_failed", GAS, asset="ETH", network="ERC20"),
    q("钱包转账一直pending，nonce卡住了，后面的交易都发不出去", ZH, "transfer_failed", GAS, asset="ETH"),
    q("波场转账失败，能量和带宽不够", ZH, "transfer_failed", GAS, asset="TRX", network="TRC20"),
    q("transfer failed: out of gas", EN, "transfer_failed", GAS, asset="ETH", network="ERC20"),
    q("tx stuck with low nonce, how to speed up or cancel", EN, "transfer_failed", GAS),
    q("failed transaction on BSC insufficient BNB for gas", EN, "transfer_failed", GAS, asset="BNB", network="BEP20"),
    q("提现手续费怎么这么高", ZH, "fees", FEES),
    q("为什么扣了两次手续费", ZH, "fees", FEES),
    q("交易手续费 maker taker 是怎么算的", ZH, "fees", FEES),
    q("withdrawal fee is too high for usdt erc20", EN, "fees", FEES, asset="USDT", network="ERC20"),
    q("Why was I charged a network fee twice?", EN, "fees", FEES),
    q("whats the trading fee for maker and taker orders", EN, "fees", FEES),
    # --- KYC -------------------------------------------------------------------------------
    q("实名认证被拒绝了，不知道原因", ZH, "kyc", KYC),
    q("KYC一直审核不通过，身份证照片已经重新上传了", ZH, "kyc", KYC),
    q("人脸识别失败 认证不了", ZH, "kyc", KYC),
    q("护照认证失败是什么原因", ZH, "kyc", KYC),
    q("my KYC got rejected", EN, "kyc", KYC),
    q("identity verification failed, selfie doesnt match?", EN, "kyc", KYC),
    q("Why was my passport verification declined again", EN, "kyc", KYC),
    # --- 2FA and account security ------------------------------------------------------------
    q("手机丢了，谷歌验证器登不上", ZH, "account_security", TWO_FA),
    q("换了新手机，谷歌验证码没了 怎么重置2fa", ZH, "account_security", TWO_FA),
    q("2FA验证码一直错误，无法登录", ZH, "account_security", TWO_FA),
    q("lost my phone with google authenticator, cant log in", EN, "account_security", TWO_FA),
    q("reset 2FA please, new phone", EN, "account_security", TWO_FA),
    q("authenticator codes not working after changing phone", EN, "account_security", TWO_FA),
    q("账户被冻结了，为什么", ZH, "account_security", FROZEN),
    q("账号被风控了，无法交易也无法提现", ZH, "account_security", FROZEN, REVIEW),
    q("我的账户被锁定了 请帮我解冻", ZH, "complaint", FROZEN),
    q("my account is frozen without any reason!!", EN, "complaint", FROZEN),
    q("account suspended for compliance review, how to unfreeze", EN, "account_security", FROZEN),
    q("Account locked by risk control", EN, "account_security", FROZEN),
    # --- scams -------------------------------------------------------------------------------
    q("有人自称客服在电报上问我要助记词", ZH, "scam_report", FAKE),
    q("收到一个假客服的邮件让我提供私钥，是你们发的吗", ZH, "scam_report", FAKE),
    q("客服让我把助记词发给他验证账户 这是真的吗", ZH, "account_security", FAKE),
    q("someone on telegram says he is support and asks for my seed phrase", EN, "scam_report", FAKE),
    q("Is this email from you? it asks me to enter my private key", EN, "scam_report", FAKE),
    q("fake support account impersonating your team", EN, "scam_report", FAKE),
    q("被骗了，把币转给了骗子，能追回吗", ZH, "scam_report", SCAM),
    q("参加了一个假空投，钱包里的USDT被转走了", ZH, "scam_report", SCAM, asset="USDT"),
    q("投资平台是骗局，我转了2万u过去，怎么报案", ZH, "scam_report", SCAM, asset="USDT"),
    q("I got scammed and sent BTC to a scammer, can you freeze his account?", EN, "scam_report", SCAM, asset="BTC"),
    q("investment scam - how to report and recover stolen crypto", EN, "scam_report", SCAM),
    q("fake airdrop drained my wallet", EN, "scam_report", SCAM, FAKE),
    # --- wallets ----------------------------------------------------------------------------
    q("换了新手机，钱包怎么恢复", ZH, "wallet_recovery", WALLET, TWO_FA),
    q("忘记钱包密码了，怎么导入钱包", ZH, "wallet_recovery", WALLET),
    q("how do I restore my wallet on a new phone", EN, "wallet_recovery", WALLET),
    q("forgot wallet password, want to import wallet with my recovery phrase", EN, "wallet_recovery", WALLET),
    q("phone broke, need to recover my self custody wallet", EN, "wallet_recovery", WALLET),
    # --- trading, listings, P2P, API --------------------------------------------------------
    q("币种下架了我的余额怎么办", ZH, "trading", DELIST),
    q("听说这个币要下架，什么时候之前要提出去", ZH, "other", DELIST),
    q("token delisted, what happens to my balance", EN, "trading", DELIST),
    q("trading suspended for this coin, can I still withdraw before deadline?", EN, "other", DELIST),
    q("P2P订单卖家一直不放币", ZH, "trading", P2P, asset="USDT"),
    q("c2c买币付款了对方不放行，申诉怎么弄", ZH, "trading", P2P),
    q("P2P 买家没付款却点了已付款", ZH, "scam_report", P2P),
    q("p2p seller not releasing usdt after I paid", EN, "trading", P2P, asset="USDT"),
    q("P2P appeal: buyer marked as paid but no money received", EN, "trading", P2P),
    q("API key泄露了怎么办", ZH, "account_security", API),
    q("量化机器人api签名错误，ip白名单怎么设置", ZH, "trading", API),
    q("my api secret was leaked on github", EN, "account_security", API),
    q("trading bot gets signature error, how to set IP whitelist for api key", EN, "trading", API),
    q("限价单一直没有成交", ZH, "trading", TRADING),
    q("合约仓位被强平了，价格根本没到强平价", ZH, "trading", TRADING),
    q("止损没触发 滑点太大", ZH, "trading", TRADING),
    q("my limit order is not filled even though price reached it", EN, "trading", TRADING),
    q("position got liquidated, margin was enough??", EN, "complaint", TRADING),
)
# fmt: on
