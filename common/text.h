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

}  // namespace usersd
