// common/text.h: ASCII folding, trimming and strict UTF-8, the helpers that
// replaced the copies in config, domain, auth, ipc, store and sync. The UTF-8
// checker is compared, over every 1-, 2- and 3-byte sequence and a sample of
// 4-byte ones, with the bit-arithmetic checker config.cc used before.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "common/text.h"

using namespace usersd;

namespace {

// The decoder config.cc had (lead-byte classes, then overlong, surrogate and
// range checks on the decoded value): an independent formulation of the
// same rules.
bool ReferenceValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

std::string Encode(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

TEST_CASE("text: EmailKey folds ASCII as before and Unicode by canonical case folding", "[common][text]") {
  CHECK(EmailKey("Ada.LOVELACE@Example.COM") == "ada.lovelace@example.com");
  CHECK(EmailKey("") == "");
  const std::string emile = EmailKey("\xC3\xA9mile@x.fr");  // émile, NFC
  CHECK(emile == "\xC3\xA9mile@x.fr");
  CHECK(EmailKey("\xC3\x89MILE@X.FR") == emile);   // ÉMILE
  CHECK(EmailKey("e\xCC\x81mile@x.fr") == emile);  // decomposed
  CHECK(EmailKey("E\xCC\x81mile@x.fr") == emile);
  CHECK(EmailKey("STRA\xC3\x9F"
                 "E@x.de") == "strasse@x.de");  // ß folds to ss (full folding)
  CHECK(EmailKey("\xCE\xA3\xCE\x8F\xCE\xA3@x.gr") == EmailKey("\xCF\x83\xCF\x8E\xCF\x82@x.gr"));  // ΣΏΣ, σώς
  // Idempotent, and invalid UTF-8 folds as ASCII without failing.
  CHECK(EmailKey(emile) == emile);
  CHECK(EmailKey("A\xFF@X") == "a\xFF@x");
}

TEST_CASE("text: IsFullwidthForm and IsMixedScript", "[common][text]") {
  CHECK(IsFullwidthForm(0xFF21));  // Ａ
  CHECK(IsFullwidthForm(0xFF01));
  CHECK(IsFullwidthForm(0xFFE0));
  CHECK_FALSE(IsFullwidthForm('A'));
  CHECK_FALSE(IsFullwidthForm(0xFF61));  // halfwidth katakana punctuation
  CHECK_FALSE(IsMixedScript("frank.1+x"));
  CHECK_FALSE(IsMixedScript("\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD"));  // иван
  CHECK(IsMixedScript("p\xD0\xB0ypal"));                           // pаypal
  CHECK_FALSE(IsMixedScript("\xE5\xB1\xB1\xE7\x94\xB0taro"));      // 山田taro
  CHECK(IsMixedScript("\xE5\xB1\xB1\xD0\xB8"));                    // Han and Cyrillic
  CHECK_FALSE(IsMixedScript("e\xCC\x81"));                         // combining marks are Inherited
}

}  // namespace

TEST_CASE("text: ToLowerAscii folds A-Z only, every other byte unchanged", "[common][text]") {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const char want = (b >= 'A' && b <= 'Z') ? static_cast<char>(b + 32) : c;
    CAPTURE(b);
    CHECK(ToLowerAscii(c) == want);
    CHECK(ToLowerAscii(std::string(1, c)) == std::string(1, want));
  }
  CHECK(ToLowerAscii("Ada.LOVELACE@Example.COM") == "ada.lovelace@example.com");
  CHECK(ToLowerAscii("\xC3\x89T\xC3\x89") == "\xC3\x89t\xC3\x89");  // ÉTÉ: only the T folds
  CHECK(ToLowerAscii("") == "");
  std::string s = "Content-TYPE";
  ToLowerAsciiInPlace(s);
  CHECK(s == "content-type");
}

TEST_CASE("text: EqualsIgnoreCaseAscii", "[common][text]") {
  CHECK(EqualsIgnoreCaseAscii("Retry-After", "retry-after"));
  CHECK(EqualsIgnoreCaseAscii("BEARER", "bearer"));
  CHECK(EqualsIgnoreCaseAscii("", ""));
  CHECK_FALSE(EqualsIgnoreCaseAscii("bearer", "bearer "));
  CHECK_FALSE(EqualsIgnoreCaseAscii("bearer", "beares"));
  // '@' (0x40) and '`' (0x60) differ by the case bit but are not letters.
  CHECK_FALSE(EqualsIgnoreCaseAscii("@", "`"));
  CHECK_FALSE(EqualsIgnoreCaseAscii("[", "{"));
  CHECK_FALSE(EqualsIgnoreCaseAscii("\xC3\x89", "\xC3\xA9"));  // É vs é: not ASCII
}

TEST_CASE("text: Trim removes the given bytes at both ends only", "[common][text]") {
  CHECK(Trim("") == "");
  CHECK(Trim("   ") == "");
  CHECK(Trim("abc") == "abc");
  CHECK(Trim(" \t\n\v\f\rabc d\r\n") == "abc d");
  CHECK(Trim("a  b") == "a  b");
  // kLineBlanks leaves \f and \v alone, as the HTTP and URL callers did.
  CHECK(Trim("\f x \v", kLineBlanks) == "\f x \v");
  CHECK(Trim(" \r\n x\t", kLineBlanks) == "x");
  CHECK(Trim("xxaxx", "x") == "a");
  // A view into the argument, not a copy.
  std::string s = "  key  ";
  std::string_view v = Trim(s);
  CHECK(v.data() == s.data() + 2);
  CHECK(v.size() == 3);
}

TEST_CASE("text: DecodeUtf8 round-trips every scalar value and refuses surrogates", "[common][text]") {
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const std::string bytes = Encode(cp);
    size_t pos = 0;
    char32_t got = 0;
    const bool ok = DecodeUtf8(bytes, &pos, &got);
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      if (ok) FAIL("surrogate accepted: " << static_cast<uint32_t>(cp));
      if (pos != 0) FAIL("pos moved on failure");
      continue;
    }
    if (!ok || got != cp || pos != bytes.size()) FAIL("code point " << static_cast<uint32_t>(cp));
  }
  SUCCEED();
}

TEST_CASE("text: IsValidUtf8 agrees with the reference on all short sequences", "[common][text]") {
  std::string s;
  for (int a = 0; a < 256; ++a) {
    s.assign(1, static_cast<char>(a));
    REQUIRE(IsValidUtf8(s) == ReferenceValidUtf8(s));
    for (int b = 0; b < 256; ++b) {
      s.assign({static_cast<char>(a), static_cast<char>(b)});
      if (IsValidUtf8(s) != ReferenceValidUtf8(s)) FAIL("bytes " << a << " " << b);
    }
  }
  // Every 3-byte sequence whose lead starts one (E0-EF), plus leads around it.
  for (int a = 0xDF; a <= 0xF0; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c = 0; c < 256; ++c) {
        s.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        if (IsValidUtf8(s) != ReferenceValidUtf8(s)) FAIL("bytes " << a << " " << b << " " << c);
      }
    }
  }
  // 4-byte leads with random continuations, biased to the boundary bytes.
  std::mt19937 rng(20261203);
  const int edges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  for (int a = 0xEF; a <= 0xFF; ++a) {
    for (int n = 0; n < 20000; ++n) {
      auto pick = [&]() { return (rng() & 1) ? edges[rng() % 10] : static_cast<int>(rng() & 0xFF); };
      s.assign({static_cast<char>(a), static_cast<char>(pick()), static_cast<char>(pick()), static_cast<char>(pick())});
      if (IsValidUtf8(s) != ReferenceValidUtf8(s)) FAIL("4-byte sequence, lead " << a);
    }
  }
  SUCCEED();
}

TEST_CASE("text: IsValidUtf8 on whole strings", "[common][text]") {
  CHECK(IsValidUtf8(""));
  CHECK(IsValidUtf8("Zo\xC3\xAB \xE2\x82\xAC \xF0\x9D\x84\x9E"));
  CHECK(IsValidUtf8(std::string("a\0b", 3)));
  CHECK_FALSE(IsValidUtf8("ok so far \xC3"));           // cut off at the end
  CHECK_FALSE(IsValidUtf8("\xED\xA0\x80\xED\xB0\x80"));  // CESU-8 pair
  CHECK_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));          // U+110000
}

TEST_CASE("text: CountCodePoints", "[common][text]") {
  CHECK(CountCodePoints("") == 0);
  CHECK(CountCodePoints("abc") == 3);
  CHECK(CountCodePoints("Zo\xC3\xAB") == 3);
  CHECK(CountCodePoints("\xE2\x82\xAC\xF0\x9D\x84\x9E") == 2);
}
