"""What a question asks for: the field name it names, the kind of value, the names it may go by.

"What is the value of the field "TO"?", "What is the total?", a bare "Invoice No.?",
"“出生日期”的内容是什么？" and "合计是多少？" all name a field; the answerer looks for that name on
the page and reads the value next to it. Receipts and invoices call one field by many names
(total / amount due / 合计), so a field name brings its usual synonyms along.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

#: Question cues → the kind of value that answers them (checked in this order).
QUESTION_TYPES: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\be-?mail\b|邮箱", re.I)),
    (
        "phone",
        re.compile(r"\bphone\b|\btelephone\b|\btel\b|\bmobile\b|\bfax\b|电话|手机|传真", re.I),
    ),
    (
        "date",
        re.compile(
            r"\bwhen\b|\bdate[ds]?\b|\bdeadline\b|几号|日期|什么时候|何时|哪天|哪一天", re.I
        ),
    ),
    (
        "count",
        re.compile(r"\bhow many\b|\bhow much\b(?!.*\b(?:cost|pay)\b)|多少(?:个|人|件|名)", re.I),
    ),
    (
        "money",
        re.compile(
            r"\b(?:total|amount|price|cost|budget|revenue|paid|balance|fee|sum|payable)\b"
            r"|金额|价格|多少钱|合计|总计|实付|应付|费用|预算|总额",
            re.I,
        ),
    ),
    ("person", re.compile(r"\bwho\b|\bwhom\b|谁|联系人|姓名", re.I)),
    ("place", re.compile(r"\bwhere\b|哪里|地点|地址|哪儿", re.I)),
    ("id", re.compile(r"\bnumber\b|\bno\b\.?|\bid\b|\bcode\b|编号|号码|代码", re.I)),
]

#: The usual names of receipt and invoice fields; a field name found here brings the others.
FIELD_SYNONYMS: list[tuple[str, ...]] = [
    (
        "total",
        "total amount",
        "grand total",
        "total due",
        "amount due",
        "balance due",
        "total payable",
        "amount payable",
        "net total",
        "nett total",
        "rounded total",
        "total incl",
        "total rm",
        "合计",
        "总计",
        "合计金额",
        "实付",
        "实付金额",
        "应付",
        "应付金额",
        "总额",
        "价税合计",
    ),
    ("date", "dated", "invoice date", "receipt date", "date of issue", "日期", "开票日期"),
    (
        "receipt number",
        "receipt no",
        "invoice number",
        "invoice no",
        "bill no",
        "doc no",
        "document no",
        "发票号码",
        "单号",
        "小票号",
        "票号",
    ),
    ("phone", "phone number", "telephone", "tel", "电话", "联系电话"),
    ("fax", "fax number", "fax no", "传真"),
]

#: Words of the usual synonyms that are not the field itself: "amount" alone is every price.
_TOTAL_HEAD = "total"


@dataclass
class Query:
    """A question as the answerer reads it."""

    text: str
    key: str | None = None  # the field name asked for, as written in the question
    quoted: bool = False  # the field name was quoted: the page is expected to hold it
    kind: str | None = None  # the kind of value that answers
    names: list[str] = field(default_factory=list)  # the key and its synonyms, key first
    issuer: bool = False  # asks who issued the document (the name at the top)
    total: bool = False  # asks for the document's total amount

    @property
    def field(self) -> bool:
        return self.key is not None


#: A quoted field name. A single quote counts only outside a word, so the apostrophe of
#: "SUBMITTER'S SS#" neither opens nor closes one.
_QUOTED = re.compile(r"[\"“”「『‘](.+?)[\"“”」』’]|(?<!\w)'(.+?)'(?!\w)")
_ZH_QUESTION = re.compile(
    r"^(?:请问)?(?P<key>.+?)(?:的)?(?:内容|值|数值)?(?:是|为)?"
    r"(?:什么|多少|哪天|哪一天|何时|什么时候|谁|哪里|哪个|几号|多少钱)?[？?。]*$"
)
_EN_FIELD = re.compile(
    r"^(?:what|which)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:the\s+)?"
    r"(?:value|content|contents|entry|text)\s+(?:of|in|for)\s+(?:the\s+)?"
    r"(?:field|box|item|entry|line|key)?\s*(?P<key>.+?)\s*[?.!]*$",
    re.I,
)
_EN_WH = re.compile(
    r"^(?:what|which|who|whom|when|where)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+(?:the\s+|this\s+|a\s+)?"
    r"(?P<key>.+?)\s*[?.!]*$",
    re.I,
)
_EN_WHAT_X_IS = re.compile(
    r"^(?:what|which)\s+(?P<key>[\w\s.#&/-]+?)\s+(?:is|are|was|were)\s+"
    r"(?:given|listed|shown|stated|written|printed|entered|used|on|in|for)\b.*$",
    re.I,
)
_EN_BARE = re.compile(r"^(?P<key>[^?？]{1,60}?)\s*[?？:：]*$")
#: "... on invoice INV-17684", "... of the receipt": which document, not which field.
_DOC_REF = re.compile(
    r"\s+(?:on|in|of|for|from)\s+(?:the\s+|this\s+|that\s+)?"
    r"(?:receipt|invoice|bill|form|claim form|document|page|report|memo|memorandum|letter|fax|"
    r"statement|order|application)\b.*$",
    re.I,
)
_EN_QUESTION_WORD = re.compile(
    r"^(?:what|which|who|whom|when|where|how|why|is|are|does|do|did|can)\b", re.I
)
#: A bare question ("Invoice No.?") is a field name only when it is short.
_BARE_MAX_WORDS = 6
_ISSUER = re.compile(
    r"\b(?:which|what)\s+(?:company|shop|store|business|merchant|seller|vendor|restaurant)\b"
    r".*\b(?:issued|issue|sold|from)\b|\bwho\s+issued\b|\b(?:issuer|seller|vendor|merchant|"
    r"company name|store name|shop name)\b|开票方|销售方|商家|店名|公司名称|哪家",
    re.I,
)
_TOTAL = re.compile(
    r"\btotal\b|\bamount\s+(?:due|payable|paid)\b|\bhow much\b.*\b(?:pay|paid|cost)\b"
    r"|合计|总计|实付|应付|总额|总金额|一共",
    re.I,
)


def normal(text: str) -> str:
    """Letters and digits only, lower case, NFKC: how field names are compared."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(char for char in text if char.isalnum())


def expected_kind(question: str) -> str | None:
    for kind, pattern in QUESTION_TYPES:
        if pattern.search(question):
            return kind
    return None


def _synonyms(key: str) -> list[str]:
    wanted = normal(key)
    for names in FIELD_SYNONYMS:
        if any(normal(name) == wanted for name in names):
            return [name for name in names if normal(name) != wanted]
    return []


def _field_name(question: str) -> tuple[str | None, bool]:
    """The field name a question asks for, and whether it was quoted."""
    text = question.strip()
    quoted = _QUOTED.search(text)
    name = (quoted.group(1) or quoted.group(2) or "").strip() if quoted else ""
    if name:
        return name, True
    if re.search(r"[\u4e00-\u9fff]", text):
        match = _ZH_QUESTION.match(text)
        key = match.group("key") if match else text
        key = key.split("的")[-1] if "的" in key else key  # "通知的联系人" asks for 联系人
        key = re.sub(
            r"^(?:这张|这份|该|本)?(?:小票|发票|收据|单据|表格?|文件)?(?:上|中|里)?(?:的)?", "", key
        )
        return (key.strip(" ：:") or None), False
    for pattern in (_EN_FIELD, _EN_WHAT_X_IS, _EN_WH):
        match = pattern.match(text)
        if match:
            key = _DOC_REF.sub("", match.group("key")).strip(" :")
            return (key or None), False
    if not _EN_QUESTION_WORD.match(text):
        match = _EN_BARE.match(text)
        if match and len(match.group("key").split()) <= _BARE_MAX_WORDS:
            return match.group("key").strip(" :") or None, False
    return None, False


def understand(question: str) -> Query:
    """Read a question: the field it names (if any), the kind of value, the synonyms."""
    key, quoted = _field_name(question)
    issuer = bool(_ISSUER.search(question)) and not quoted
    kind_text = key if quoted and key else question
    kind = expected_kind(kind_text)
    names = [key, *_synonyms(key)] if key else []
    total = bool(_TOTAL.search(key or question)) and not quoted and kind == "money"
    if total and not any(normal(name) == _TOTAL_HEAD for name in names):
        names += [n for n in FIELD_SYNONYMS[0] if n not in names]
    return Query(
        text=question,
        key=key,
        quoted=quoted,
        kind=kind,
        names=names,
        issuer=issuer,
        total=total,
    )
