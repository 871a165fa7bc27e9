"""RE2 patterns for PII in user text: emails (also spelled out), phone numbers, ID / card / account numbers.

Why a module of its own: the patterns are the part a reviewer audits and extends (tests/data/pii_corpus.yaml
holds the variants they must catch and the ordinary text they must leave alone); `redact.py` only runs them.
They assume `redact.sanitize` ran first: NFKC plus composed accents, invisible characters removed, every
dash written `-`, whitespace one space, digits of every script written 0-9. RE2 has no look-around, and its
`\\b` is an ASCII word boundary, so a number may also be delimited by `_` (`_B`, consumed with the number).
Order matters: `PATTERNS` runs top to bottom, each on the output of the previous one.
"""

from __future__ import annotations

KINDS = ("email", "phone", "id")
TOKENS = {"email": "[EMAIL]", "phone": "[PHONE]", "id": "[ID]"}

_D = r"\p{Nd}"
_B = r"(?:\b|_)"
_SEP = r"(?: ?[.\-/_·・ー] ?| )"  # one separator between digit groups: "-", " - ", ".", "/", "_", " "

# ---- emails -------------------------------------------------------------------------------------------------
# Local part and domain labels use letters outside CJK scripts first, so "邮箱是john@qq.com谢谢" loses only the
# address; a second, wide pass catches addresses written in CJK (用户@例子.中国).
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_LOCAL = rf"(?:[^\P{{L}}{_CJK}]|[\p{{M}}\p{{Nd}}._%+'\-])+"
_LABEL = rf"(?:[^\P{{L}}{_CJK}]|[\p{{M}}\p{{Nd}}\-])+"
_LOCAL_WIDE = r"[\p{L}\p{M}\p{Nd}._%+'\-]+"
_LABEL_WIDE = r"[\p{L}\p{M}\p{Nd}\-]+"
_OB, _CB = r"[(\[{<]", r"[)\]}>]"
_AT = rf"(?: ?@ ?| ?{_OB} ?(?i:at|a|@) ?{_CB} ?)"  # @, " @ ", (at) [at] {{at}} <at> (a) [@]
_DOT_MARK = rf"(?:[.。]| [.。] | ?{_OB} ?(?i:dot|\.|点) ?{_CB} ?)"  # . 。 " . " (dot) [.] ...
_DOT = rf"(?:{_DOT_MARK}| (?i:dot|точка) )"
# "john at gmail dot com": a plain word "at" is everyday English, so this form must end in a known TLD.
_TLD = (r"(?i:com|net|org|edu|gov|mil|info|biz|io|co|me|ai|app|dev|xyz|online|site|tv|cc|us|uk|ca|au|nz|ie|"
        r"de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|cz|ru|ua|by|kz|cn|hk|tw|jp|kr|sg|in|id|my|th|vn|ph|br|mx|ar|cl|"
        r"pe|tr|ir|il|sa|ae|eg|za|ng|ke|gr|pt)\b")

EMAIL = rf"{_LOCAL}{_AT}{_LABEL}(?:{_DOT}{_LABEL})+"
EMAIL_WIDE = rf"{_LOCAL_WIDE}{_AT}{_LABEL_WIDE}(?:{_DOT}{_LABEL_WIDE})+"
EMAIL_WORDS = (rf"{_LOCAL}(?: (?i:dot) {_LOCAL})* (?i:at|собака) {_LABEL}(?:{_DOT}{_LABEL})*"
               rf"(?:{_DOT_MARK}| (?i:dot|точка) ){_TLD}")

# ---- ID-like numbers (before phones: a phone pattern would otherwise eat part of them) ---------------------
IBAN = r"\b[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4} ?[0-9]{4}(?: ?[A-Z0-9]{4}){0,6}(?: ?[A-Z0-9]{1,4})?\b"
CARD = rf"{_B}{_D}{{4}}(?:{_SEP}{_D}{{4}}){{3}}{_B}"  # 4111 1111 1111 1111
AMEX = rf"{_B}3[47]{_D}{{2}}{_SEP}{_D}{{6}}{_SEP}{_D}{{5}}{_B}"  # 3782 822463 10005
CN_ID = rf"{_B}{_D}{{6}}{_SEP}{_D}{{8}}{_SEP}{_D}{{3}}[{_D}Xx]{_B}"  # 110105 19491231 002X
CPF = rf"{_B}{_D}{{3}}\.{_D}{{3}}\.{_D}{{3}}-{_D}{{2}}{_B}"  # 123.456.789-09 (Brazil)
SSN = rf"{_B}{_D}{{3}}{_SEP}{_D}{{2}}{_SEP}{_D}{{4}}{_B}"  # 123-45-6789 (US)
NINO = r"\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b"  # QQ 12 34 56 C (UK)
# any other run of 8+ digits (a Chinese ID card may end in X); not one glued to letters after it, which is a
# model code (Xiaomi "22081212UG"), not an ID
LONG_DIGITS = rf"{_D}{{8,}}[Xx]?{_B}"

# ---- phones -------------------------------------------------------------------------------------------------
PHONE = "|".join([
    # international: +CC or 00CC, then 2-6 groups, each maybe in parentheses: +1 (415) 555-0100, +44 (0)20 ...
    rf"(?:\+|\b00){_D}{{1,3}}(?:{_SEP}?\(?{_D}{{1,5}}\)?){{2,6}}",
    rf"{_B}[78]{_SEP}?\(?{_D}{{3}}\)?{_SEP}?{_D}{{3}}{_SEP}?{_D}{{2}}{_SEP}?{_D}{{2}}{_B}",  # 8 (912) 345-67-89
    rf"\({_D}{{2,4}}\){_SEP}?{_D}{{3,5}}{_SEP}?{_D}{{3,4}}",  # (415) 555-0100, (11) 91234-5678
    rf"{_B}1{_SEP}{_D}{{3}}{_SEP}{_D}{{3}}{_SEP}{_D}{{4}}{_B}",  # 1-800-555-0199
    rf"{_B}{_D}{{3,4}}{_SEP}{_D}{{3,4}}{_SEP}{_D}{{4}}{_B}",  # 555-123-4567, 138 0013 8000, 0755-8888-9999
    rf"{_B}0{_D}{{1,4}}{_SEP}{_D}{{3,4}}{_SEP}{_D}{{3,4}}{_B}",  # 020 7946 0958, 03-1234-5678 (trunk 0)
    rf"{_B}0{_D}(?:{_SEP}{_D}{{2}}){{4}}{_B}",  # 06 12 34 56 78
    rf"{_B}1[3-9]{_D}{{9}}{_B}",  # 13812345678 (CN mobile, no separators)
    # two groups of >= 10 digits in all: 98765 43210, 1367781-5743, 030 12345678 (too long for a date or price)
    rf"{_B}(?:" + "|".join(rf"{_D}{{{a}}}{_SEP}{_D}{{{10 - a},}}" for a in range(2, 7))
    + rf"|{_D}{{7,}}{_SEP}{_D}{{3,}}){_B}",
    rf"{_B}{_D}{{3}}[.\-]{_D}{{4}}{_B}",  # 555-0100 (local, 7 digits)
])

PATTERNS: tuple[tuple[str, str], ...] = (
    ("email", EMAIL), ("email", EMAIL_WIDE), ("email", EMAIL_WORDS),
    ("id", IBAN), ("id", CARD), ("id", AMEX), ("id", CN_ID), ("id", CPF), ("id", SSN), ("id", NINO),
    ("phone", PHONE), ("id", LONG_DIGITS),
)
# Cheap pre-filter, a superset of every pattern: an @, a bracketed at, a spelled-out at, or 5 digits with at
# most 3 other characters between them.
CANDIDATE = (rf"@|{_OB} ?(?i:at|a|@) ?{_CB}| (?i:at|собака) |" + r"[^\p{Nd}]{0,3}".join([_D] * 5))
