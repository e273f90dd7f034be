#include "common/text.h"

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <algorithm>
#include <set>

namespace usersd {

std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  ToLowerAsciiInPlace(out);
  return out;
}

void ToLowerAsciiInPlace(std::string& s) {
  for (char& c : s) c = ToLowerAscii(c);
}

bool EqualsIgnoreCaseAscii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s, std::string_view chars) {
  size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(chars);
  return s.substr(b, e - b + 1);
}

bool DecodeUtf8(std::string_view s, size_t* pos, char32_t* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  const size_t i = *pos;
  const unsigned char b0 = p[i];
  if (b0 < 0x80) {
    *out = b0;
    *pos = i + 1;
    return true;
  }
  size_t len;
  char32_t cp;
  // The allowed range of the second byte narrows for E0 (no overlongs), ED (no
  // surrogates), F0 (no overlongs) and F4 (nothing above U+10FFFF).
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return false;  // 80-BF stray continuation, C0/C1 overlong lead, F5-FF
  }
  if (n - i < len) return false;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char b = p[i + k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  *out = cp;
  *pos = i + len;
  return true;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  char32_t cp;
  while (i < s.size()) {
    if (!DecodeUtf8(s, &i, &cp)) return false;
  }
  return true;
}

size_t CountCodePoints(std::string_view s) {
  size_t count = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

namespace {
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using UBuf = std::unique_ptr<uint8_t, FreeDeleter>;
}  // namespace

std::string EmailKey(std::string_view email) {
  bool ascii = true;
  for (char c : email) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii || !IsValidUtf8(email)) return ToLowerAscii(email);
  const auto* in = reinterpret_cast<const uint8_t*>(email.data());
  size_t nfd_len = 0;
  UBuf nfd(u8_normalize(UNINORM_NFD, in, email.size(), nullptr, &nfd_len));
  if (!nfd) return ToLowerAscii(email);  // ENOMEM; EILSEQ cannot happen on valid UTF-8
  size_t key_len = 0;
  UBuf key(u8_casefold(nfd.get(), nfd_len, nullptr, UNINORM_NFC, nullptr, &key_len));
  if (!key) return ToLowerAscii(email);
  return std::string(reinterpret_cast<const char*>(key.get()), key_len);
}

bool IsFullwidthForm(char32_t cp) {
  return (cp >= 0xFF01 && cp <= 0xFF60) || (cp >= 0xFFE0 && cp <= 0xFFE6);
}

bool IsMixedScript(std::string_view s) {
  std::set<std::string_view> scripts;
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    if (!DecodeUtf8(s, &i, &cp)) return true;  // REQUIRES says it cannot; refuse rather than guess
    const uc_script_t* script = uc_script(static_cast<ucs4_t>(cp));
    if (script == nullptr) continue;  // unassigned: no script to mix
    std::string_view name = script->name;
    if (name == "Common" || name == "Inherited") continue;
    scripts.insert(name);
  }
  if (scripts.size() <= 1) return false;
  auto within = [&](std::initializer_list<std::string_view> allowed) {
    for (auto n : scripts)
      if (std::find(allowed.begin(), allowed.end(), n) == allowed.end()) return false;
    return true;
  };
  return !(within({"Latin", "Han", "Hiragana", "Katakana"}) || within({"Latin", "Han", "Bopomofo"}) ||
           within({"Latin", "Han", "Hangul"}));
}

}  // namespace usersd
