// Text helpers shared by the daemon's parts: ASCII case folding, trimming
// and strict UTF-8 decoding. Byte-oriented and locale-independent (unlike
// <cctype>): only the ASCII letters A-Z and a-z are ever folded, every other
// byte, including UTF-8, passes unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace usersd {

// Folds A-Z to a-z; every other byte is returned unchanged.
constexpr char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
// Folds A-Z to a-z and leaves every other byte alone (e.g. the key for email
// uniqueness, header names).
std::string ToLowerAscii(std::string_view s);
void ToLowerAsciiInPlace(std::string& s);
// Equal after folding A-Z to a-z.
bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b);

// The ASCII whitespace of the C locale's isspace: space, \t, \n, \v, \f, \r.
inline constexpr std::string_view kAsciiWhitespace = " \t\n\v\f\r";
// Space, tab, CR and LF: the blanks around an HTTP header value or a line.
inline constexpr std::string_view kLineBlanks = " \t\r\n";
// `s` without leading and trailing bytes from `chars`; a view into `s`.
std::string_view Trim(std::string_view s, std::string_view chars = kAsciiWhitespace);

// Decodes the code point starting at s[*pos] and advances *pos past it.
// Returns false, leaving *pos alone, for any ill-formed sequence (Unicode
// Table 3-7: overlong forms, surrogates U+D800-U+DFFF, values above
// U+10FFFF, stray continuation bytes), including one cut off by the end of
// `s`. REQUIRES: *pos < s.size().
bool DecodeUtf8(std::string_view s, size_t* pos, char32_t* out);
// Well-formed UTF-8 throughout (see DecodeUtf8).
bool IsValidUtf8(std::string_view s);
// Number of code points. REQUIRES: IsValidUtf8(s).
size_t CountCodePoints(std::string_view s);

// The key under which an email is unique (SPEC 1, "case-insensitive"; the
// store's by_email index): an all-ASCII address folds A-Z to a-z, as
// before; any other is canonically case-folded, NFC(casefold(NFD(s))) with
// Unicode's full, language-independent folding (libunistring), so "ÉMILE",
// "émile" and "e\u0301mile" share a key. Invalid UTF-8 (never in a
// validated address; possible in a value WorkOS sent) folds as ASCII.
// Part of the on-disk format: a change here needs the index rebuilt
// (store.cc, kEmailIndexVersion).
std::string EmailKey(std::string_view email);

// U+FF01-U+FF60 and U+FFE0-U+FFE6: the fullwidth forms, look-alikes of
// ASCII that an address could use to pass for another.
bool IsFullwidthForm(char32_t cp);
// The letters of `s` (REQUIRES: valid UTF-8) mix scripts beyond what one
// writing system uses: more than one script besides Common and Inherited,
// unless all are in {Latin, Han, Hiragana, Katakana}, {Latin, Han,
// Bopomofo} or {Latin, Han, Hangul} (Unicode TS #39, "highly restrictive").
// "pаypal" with a Cyrillic "а" is mixed; "山田taro" is not.
bool IsMixedScript(std::string_view s);

}  // namespace usersd
