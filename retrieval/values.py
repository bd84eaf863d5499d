"""Value types as real documents write them: dates, amounts, phone numbers, codes, names.

Each kind is a pattern whose matches are character spans of a text, so an answer can be cut
to exactly its value (and its citation box to the value's characters). The patterns are
written for what scanners and phones return: any order and separator of a date ("12-01-19",
"18/01/2018", "2-Dec-97", "2019年1月12日"), amounts with or without a currency ("60.30",
"RM 60.30", "$1,234.50", "165.04元"), phone numbers with their punctuation.
"""

from __future__ import annotations

import re

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19\d\d|20\d\d|\d\d)"
_CURRENCY = r"(?:RM|MYR|USD|US\$|S\$|HK\$|RMB|CNY|EUR|GBP|SGD|\$|¥|￥|€|£)"
#: Digits not glued to other digits or letters (so "2019" is not found inside "A20190").
_L, _R = r"(?<![\w.,/-])", r"(?![\w/-]|[.,:]\d)"
#: ...or glued to the time that follows it ("16-04-201814:51").
_T = rf"(?:{_R}|(?=\d{{1,2}}:\d\d))"

PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(
        "|".join(
            [
                r"\d{4}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*[日号])?",  # 2019年1月12日
                rf"{_L}(?:19|20)\d\d\s?[-/.]\s?{_MON}\s?[-/.]\s?{_DAY}{_R}",  # 2019-01-12
                rf"{_L}{_DAY}\s?([-/.])\s?{_MON}\s?\1\s?{_YEAR}{_T}",  # 12-01-19, 18/01/2018
                rf"{_L}{_MON}\s?([-/.])\s?{_DAY}\s?\2\s?{_YEAR}{_T}",  # 01/31/2019
                rf"{_L}(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w.,])",  # 20190112
                rf"\b{_DAY}(?:st|nd|rd|th)?[\s\-/.]*{_MONTH}[\s\-/.,]*'?{_YEAR}\b",  # 2-Dec-97
                rf"\b{_MONTH}[\s\-/.]*{_DAY}(?:st|nd|rd|th)?,?[\s\-/.]*'?{_YEAR}\b",  # Jan 12 2019
            ]
        ),
        re.I,
    ),
    "money": re.compile(
        rf"{_CURRENCY}\s?-?\d[\d,]*(?:\.\d{{1,2}})?(?!\d)"
        rf"|{_L}-?\d{{1,3}}(?:,\d{{3}})+(?:\.\d{{2}})?(?:\s?(?:元|{_CURRENCY}))?{_R}"
        rf"|{_L}-?\d+\.\d{{2}}(?:\s?(?:元|{_CURRENCY}))?{_R}"
        rf"|{_L}\d+(?:\.\d+)?\s?(?:元|万元|{_CURRENCY}){_R}",
        re.I,
    ),
    "phone": re.compile(
        r"(?<!\d)1[3-9]\d{9}(?!\d)|(?<![\w+(])\(?\+?\(?\d[\d\s().-]{5,}\d(?!\w)",
    ),
    "percent": re.compile(r"\d+(?:\.\d+)?\s?%"),
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "count": re.compile(rf"{_L}\d[\d,]*(?:\.\d+)?{_R}"),
    "person": re.compile(
        r"\b(?:[A-Z][a-z]*\.?\s?){0,2}[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)+\b"
        r"|\b[A-Z]\.\s?(?:[A-Z]\.\s?)*[A-Z][a-z]+\b"
        r"|(?<![\u4e00-\u9fff])[\u4e00-\u9fff]{2,4}(?![\u4e00-\u9fff])"
    ),
    "place": re.compile(
        r"\b(?:room|suite|floor|building|unit|lot|no\.?)\s*\d\w*|\d+号楼[\w\u4e00-\u9fff]*"
        r"|[\u4e00-\u9fff]+(?:省|市|区|县|路|街|号)[\w\u4e00-\u9fff]*"
        r"|\b\d+\s+\w+\s+(?:street|st|road|rd|lane|avenue|ave|jalan|jln)\b",
        re.I,
    ),
    "id": re.compile(r"(?<![\w-])(?=[\w./-]*\d)[A-Z0-9][\w./-]{3,}(?<![./-])(?![\w-])", re.I),
}
#: Digits in a phone number: fewer is a date, an amount or a code.
_PHONE_DIGITS = (7, 15)


#: Full-width forms of ASCII ("（+86）", "：", "１２") and the ideographic space, to their
#: ASCII characters one for one, so spans found in the folded text hold in the original.
_HALF_WIDTH = {0xFF01 + offset: 0x21 + offset for offset in range(0x5E)} | {0x3000: 0x20}


def spans(kind: str, text: str) -> list[tuple[int, int]]:
    """Character spans of the values of a kind in the text, left to right (full-width
    characters read as their ASCII forms)."""
    pattern = PATTERNS.get(kind)
    if pattern is None:
        return []
    text = text.translate(_HALF_WIDTH)
    out = []
    for match in pattern.finditer(text):
        start, end = match.span()
        value = text[start:end]
        start += len(value) - len(value.lstrip())
        end -= len(value) - len(value.rstrip())
        if kind == "phone":
            digits = sum(char.isdigit() for char in value)
            if not _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1] or PATTERNS["date"].fullmatch(
                value.strip()
            ):
                continue
        if end > start:
            out.append((start, end))
    return out
