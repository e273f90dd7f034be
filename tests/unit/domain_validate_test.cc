// Tests for domain/validate.h: the user.update / user.delete payload parsers
// and the per-field validators. Table-driven; every refused case also checks
// the exact message, which must start with the field's wire name.

#include "domain/validate.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace usersd::domain {
namespace {

using Catch::Matchers::StartsWith;

std::string Repeat(std::string_view s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out.append(s);
  return out;
}

// A byte string from a literal that may contain NUL.
template <size_t N>
std::string Bytes(const char (&s)[N]) {
  return std::string(s, N - 1);
}

const std::string kUuid = "3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6a";

struct Case {
  std::string input;
  std::string error;  // empty: must be accepted; else the exact message
};

void CheckStatus(const Status& st, const std::string& expected_error) {
  if (expected_error.empty()) {
    CHECK(st.ok());
    CHECK(st.message().empty());
  } else {
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK(st.message() == expected_error);
  }
}

// A directory under the system temp dir, removed with its contents at scope
// exit; unique per process and per instance so parallel test runs don't meet.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("usersd-validate-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path() const { return path_.string(); }
  void Write(const std::string& name, const std::string& content) const {
    std::ofstream out(path_ / name, std::ios::binary);
    out << content;
  }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------
// UTF-8 helpers

TEST_CASE("validate: IsValidUtf8 accepts well-formed UTF-8 and refuses overlongs, surrogates and > U+10FFFF",
          "[domain][validate]") {
  struct Utf8Case {
    std::string bytes;
    bool valid;
  };
  const std::vector<Utf8Case> cases = {
      {"", true},
      {"abc", true},
      {Bytes("a\0b"), true},               // NUL is a valid code point
      {"\x7F", true},                      // U+007F
      {"\xC2\x80", true},                  // U+0080, smallest 2-byte
      {"\xC3\xA9", true},                  // é
      {"\xDF\xBF", true},                  // U+07FF
      {"\xE0\xA0\x80", true},              // U+0800, smallest 3-byte
      {"\xE2\x82\xAC", true},              // €
      {"\xED\x9F\xBF", true},              // U+D7FF, just below the surrogates
      {"\xEE\x80\x80", true},              // U+E000, just above the surrogates
      {"\xEF\xBF\xBF", true},              // U+FFFF
      {"\xF0\x90\x80\x80", true},          // U+10000, smallest 4-byte
      {"\xF0\x9D\x84\x9E", true},          // 𝄞
      {"\xF4\x8F\xBF\xBF", true},          // U+10FFFF, the largest
      {"\x80", false},                     // lone continuation
      {"\xBF", false},                     // lone continuation
      {"a\x80z", false},                   // continuation after ASCII
      {"\xC0\x80", false},                 // overlong NUL
      {"\xC0\xAF", false},                 // overlong '/'
      {"\xC1\xBF", false},                 // overlong U+007F
      {"\xE0\x80\x80", false},             // overlong 3-byte
      {"\xE0\x9F\xBF", false},             // overlong U+07FF
      {"\xF0\x80\x80\x80", false},         // overlong 4-byte
      {"\xF0\x8F\xBF\xBF", false},         // overlong U+FFFF
      {"\xED\xA0\x80", false},             // U+D800
      {"\xED\xBF\xBF", false},             // U+DFFF
      {"\xED\xA0\x80\xED\xB0\x80", false}, // CESU-8 surrogate pair
      {"\xF4\x90\x80\x80", false},         // U+110000
      {"\xF5\x80\x80\x80", false},         // lead byte above F4
      {"\xF8\x88\x80\x80\x80", false},     // 5-byte form
      {"\xFE", false},
      {"\xFF", false},
      {"\xC3", false},                     // truncated 2-byte
      {"\xE2\x82", false},                 // truncated 3-byte
      {"\xF0\x9D\x84", false},             // truncated 4-byte
      {"abc\xC3", false},                  // truncated at the end
      {"\xC3\x41", false},                 // bad continuation
      {"\xE2\x28\xA1", false},             // bad first continuation
      {"\xE2\x82\x28", false},             // bad second continuation
      {"\xF0\x9D\x84\x28", false},         // bad third continuation
  };
  for (const auto& c : cases) {
    CAPTURE(c.bytes, c.valid);
    CHECK(IsValidUtf8(c.bytes) == c.valid);
  }
}

TEST_CASE("validate: CountCodePoints counts code points, not bytes", "[domain][validate]") {
  CHECK(CountCodePoints("") == 0);
  CHECK(CountCodePoints("abc") == 3);
  CHECK(CountCodePoints("Zo\xC3\xAB") == 3);                        // Zoë
  CHECK(CountCodePoints("\xE2\x82\xAC\xF0\x9D\x84\x9E") == 2);      // €𝄞
  CHECK(CountCodePoints(Repeat("\xF0\x9D\x84\x9E", 100)) == 100);
  CHECK(CountCodePoints(Bytes("a\0b")) == 3);
}

TEST_CASE("validate: ToLowerAscii folds only A-Z", "[domain][validate]") {
  CHECK(ToLowerAscii("Alice.Smith@Example.COM") == "alice.smith@example.com");
  CHECK(ToLowerAscii("already@lower.case") == "already@lower.case");
  CHECK(ToLowerAscii("") == "");
  CHECK(ToLowerAscii("\xC3\x89""COLE@x.fr") == "\xC3\x89""cole@x.fr");  // É untouched
  CHECK(ToLowerAscii("[\\]^_`@{|}") == "[\\]^_`@{|}");                   // bytes next to A-Z
  CHECK(ToLowerAscii(Bytes("A\0B")) == Bytes("a\0b"));
}

// ---------------------------------------------------------------------------
// Names

TEST_CASE("validate: ValidateName accepts 1 to 100 code points of printable UTF-8", "[domain][validate]") {
  const std::vector<std::string> ok = {
      "A",
      "Zo\xC3\xAB",                                        // Zoë
      "\xE6\x9D\x8E",                                      // 李
      "O'Brien-Smith",
      "Jean Luc",
      " Ann ",                                             // kept as given, not trimmed
      "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB",      // 👩‍💻 (ZWJ sequence)
      "A\xE2\x80\x8B",                                     // ZWSP next to a visible char
      Repeat("a", 100),
      Repeat("\xC3\xA9", 100),                             // 100 code points, 200 bytes
      Repeat("\xE2\x82\xAC", 100),                         // 300 bytes
      Repeat("\xF0\x9D\x84\x9E", 100),                     // 400 bytes
      Repeat("a", 99) + "\xC3\xA9",                        // 100 code points, 101 bytes
  };
  for (const auto& name : ok) {
    CAPTURE(name);
    CheckStatus(ValidateName("firstName", name), "");
  }
}

TEST_CASE("validate: ValidateName refuses empty, too long, bad UTF-8, control chars and blank names",
          "[domain][validate]") {
  const std::string kLength = "firstName: must be 1 to 100 characters";
  const std::string kUtf8 = "firstName: not valid UTF-8";
  const std::string kControl = "firstName: must not contain control characters";
  const std::string kBlank = "firstName: must not be blank";
  const std::vector<Case> cases = {
      {"", kLength},
      {Repeat("a", 101), kLength},
      {Repeat("\xC3\xA9", 101), kLength},
      {Repeat("\xF0\x9D\x84\x9E", 101), kLength},
      {Repeat("a", 100) + "\xC3\xA9", kLength},
      {"\xC3\x28", kUtf8},
      {"Ann\xC0\xAF", kUtf8},                 // overlong
      {"Ann\xED\xA0\x80", kUtf8},             // surrogate
      {"Ann\xF4\x90\x80\x80", kUtf8},         // > U+10FFFF
      {"Ann\xFF", kUtf8},
      {"Ann\xE2\x82", kUtf8},                 // truncated
      {Repeat("a", 200) + "\xFF", kUtf8},     // UTF-8 is checked before length
      {"Ann\n", kControl},
      {"A\tB", kControl},
      {"A\rB", kControl},
      {Bytes("A\0B"), kControl},
      {"A\x1F", kControl},
      {"A\x7F", kControl},
      {"A\xC2\x80", kControl},                // U+0080 (C1)
      {"A\xC2\x85", kControl},                // U+0085 NEL
      {"A\xC2\x9F", kControl},                // U+009F
      {" ", kBlank},
      {"   ", kBlank},
      {"\xC2\xA0", kBlank},                   // NO-BREAK SPACE
      {"\xE3\x80\x80", kBlank},               // IDEOGRAPHIC SPACE
      {"\xE2\x80\x8B", kBlank},               // ZERO WIDTH SPACE
      {"\xE2\x80\x83\xE2\x80\xAF", kBlank},   // EM SPACE + NARROW NBSP
      {"\xEF\xBB\xBF", kBlank},               // BOM
      {"\xE3\x85\xA4", kBlank},               // HANGUL FILLER
      {"\xE2\xA0\x80", kBlank},               // BRAILLE PATTERN BLANK
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    CheckStatus(ValidateName("firstName", c.input), c.error);
  }
}

TEST_CASE("validate: ValidateName names the field it was given", "[domain][validate]") {
  CheckStatus(ValidateName("lastName", ""), "lastName: must be 1 to 100 characters");
  CheckStatus(ValidateName("lastName", "\xFF"), "lastName: not valid UTF-8");
}

// ---------------------------------------------------------------------------
// Email

TEST_CASE("validate: ValidateEmail accepts plausible addresses", "[domain][validate]") {
  const std::string local64 = Repeat("a", 64);
  // 64 + 1 + (63 + 1 + 63 + 1 + 62) = 255 bytes.
  const std::string max_email = local64 + "@" + Repeat("b", 63) + "." + Repeat("c", 63) + "." + Repeat("d", 62);
  REQUIRE(max_email.size() == 255);
  const std::vector<std::string> ok = {
      "a@b.co",
      "alice@example.com",
      "Alice.Smith+tag@Mail.Example.COM",
      "o'brien@example.ie",
      "user_name@sub-domain.example.org",
      "a!#$%&'*+-/=?^_`{|}~@example.com",
      "x@xn--bcher-kva.example",
      "x@1.example",                          // numeric label that is not the last
      "x@example.c-m",
      "\xCE\xB4\xCE\xBF\xCE\xBA\xCE\xB9\xCE\xBC\xCE\xAE@example.com",  // UTF-8 local part
      local64 + "@example.com",
      "a@" + Repeat("b", 63) + ".com",        // 63-byte label
      max_email,
  };
  for (const auto& e : ok) {
    CAPTURE(e);
    CheckStatus(ValidateEmail(e), "");
  }
}

TEST_CASE("validate: ValidateEmail refuses fullwidth and mixed-script local parts, keeps one-script ones",
          "[domain][validate]") {
  // Issue 21, item 8: look-alikes of another address.
  CheckStatus(ValidateEmail("\xEF\xBD\x86rank@example.com"),  // fullwidth f
              "email: local part must not use fullwidth characters");
  CheckStatus(ValidateEmail("frank\xEF\xBC\x8B"
                            "1@example.com"),  // fullwidth +
              "email: local part must not use fullwidth characters");
  CheckStatus(ValidateEmail("p\xD0\xB0ypal@example.com"),  // Latin with a Cyrillic a
              "email: local part must not mix scripts (such as Latin and Cyrillic)");
  CheckStatus(ValidateEmail("\xCE\xB1lpha\xD0\xB1@example.com"),  // Greek and Cyrillic
              "email: local part must not mix scripts (such as Latin and Cyrillic)");
  for (const char* ok : {"\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD.1985@example.ru",  // Cyrillic with digits and a dot
                         "\xE5\xB1\xB1\xE7\x94\xB0taro@example.jp",           // Han and Latin
                         "\xE3\x81\x9F\xE3\x82\x8D\xE3\x81\x86\xE5\xB1\xB1@example.jp",  // Hiragana, Han
                         "\xEA\xB9\x80kim@example.kr",                                   // Hangul and Latin
                         "e\xCC\x81mile@example.fr"}) {                                  // a combining mark
    INFO(ok);
    CheckStatus(ValidateEmail(ok), "");
  }
}

TEST_CASE("validate: ValidateEmail refuses implausible addresses", "[domain][validate]") {
  const std::string kInvalid = "email: not a valid email address";
  const std::string too_long =
      Repeat("a", 64) + "@" + Repeat("b", 63) + "." + Repeat("c", 63) + "." + Repeat("d", 63);
  REQUIRE(too_long.size() == 256);
  const std::vector<Case> cases = {
      {"", "email: must not be empty"},
      {too_long, "email: must be at most 255 bytes"},
      {Repeat("a", 65) + "@example.com", "email: local part must be at most 64 bytes"},
      {"al\xFFice@example.com", "email: not valid UTF-8"},
      {"al\xC0\xAFice@example.com", "email: not valid UTF-8"},
      {"plainaddress", kInvalid},
      {"@example.com", kInvalid},
      {"alice@", kInvalid},
      {"alice@@example.com", kInvalid},
      {"a@b@example.com", kInvalid},
      {"alice@localhost", kInvalid},
      {"alice@.example.com", kInvalid},
      {"alice@example..com", kInvalid},
      {"alice@example.com.", kInvalid},
      {"alice@-example.com", kInvalid},
      {"alice@example-.com", kInvalid},
      {"alice@example.-com", kInvalid},
      {"alice@exa_mple.com", kInvalid},
      {"alice@exa mple.com", kInvalid},
      {"alice@example.123", kInvalid},
      {"alice@127.0.0.1", kInvalid},
      {"alice@[127.0.0.1]", kInvalid},
      {"alice@" + Repeat("b", 64) + ".com", kInvalid},           // 64-byte label
      {"alice@\xE4\xBE\x8B\xE3\x81\x88.jp", kInvalid},          // non-ASCII domain
      {"al ice@example.com", kInvalid},
      {" alice@example.com", kInvalid},
      {"alice@example.com ", kInvalid},
      {"alice\n@example.com", kInvalid},
      {"alice\t@example.com", kInvalid},
      {Bytes("alice\0@example.com"), kInvalid},
      {"a\x7F@example.com", kInvalid},
      {"al\xC2\xA0ice@example.com", kInvalid},                  // NBSP in local part
      {"al\xC2\x85ice@example.com", kInvalid},                  // C1 control in local part
      {".alice@example.com", kInvalid},
      {"alice.@example.com", kInvalid},
      {"al..ice@example.com", kInvalid},
      {"\"alice\"@example.com", kInvalid},                      // quoted local part
      {"ali(ce)@example.com", kInvalid},
      {"ali,ce@example.com", kInvalid},
      {"alice@exam,ple.com", kInvalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    CheckStatus(ValidateEmail(c.input), c.error);
  }
}

// ---------------------------------------------------------------------------
// avatarUrl

TEST_CASE("validate: ValidateAvatarUrl accepts http(s) URLs with a host up to 2048 bytes",
          "[domain][validate]") {
  const std::string prefix = "https://example.com/";
  const std::string max_url = prefix + Repeat("a", 2048 - prefix.size());
  REQUIRE(max_url.size() == 2048);
  const std::vector<std::string> ok = {
      "https://example.com/a.png",
      "http://example.com",
      "HTTPS://EXAMPLE.COM/x",
      "HtTp://cdn.example.com:8080/p?q=1#f",
      "https://example.com?x=1",
      "https://example.com#frag",
      "https://example.com:/x",                 // empty port means the default
      "https://example.com:65535/",
      "https://127.0.0.1/a.png",
      "https://[2001:db8::1]/a.png",
      "https://[2001:db8::1]:443/",
      "https://user:pw@example.com/x",
      "https://ex%41mple.com/",
      "https://workoscdn.com/images/v1/abc?x=y&z=%20",
      max_url,
  };
  for (const auto& url : ok) {
    CAPTURE(url);
    CheckStatus(ValidateAvatarUrl(url), "");
  }
}

TEST_CASE("validate: ValidateAvatarUrl refuses other schemes, missing hosts, whitespace and long URLs",
          "[domain][validate]") {
  const std::string prefix = "https://example.com/";
  const std::string too_long = prefix + Repeat("a", 2049 - prefix.size());
  REQUIRE(too_long.size() == 2049);
  const std::string kScheme = "avatarUrl: must be an http or https URL";
  const std::string kNoHost = "avatarUrl: must have a host";
  const std::string kBadHost = "avatarUrl: must have a valid host";
  const std::string kPort = "avatarUrl: must have a valid port";
  const std::string kSpace = "avatarUrl: must not contain whitespace or control characters";
  const std::string kAscii = "avatarUrl: must be ASCII (percent-encode other characters)";
  const std::vector<Case> cases = {
      {"", "avatarUrl: must not be empty"},
      {too_long, "avatarUrl: must be at most 2048 bytes"},
      {"ftp://example.com/a.png", kScheme},
      {"javascript:alert(1)", kScheme},
      {"data:image/png;base64,AAAA", kScheme},
      {"file:///etc/passwd", kScheme},
      {"//example.com/a.png", kScheme},
      {"example.com/a.png", kScheme},
      {"https:/example.com", kScheme},
      {"httpss://example.com", kScheme},
      {"xhttp://example.com", kScheme},
      {"ftp://x/?u=http://example.com", kScheme},
      {"https://", kNoHost},
      {"https:///a.png", kNoHost},
      {"https://:443/", kNoHost},
      {"https://user@/x", kNoHost},
      {"https://?x", kNoHost},
      {"https://[]/", kBadHost},
      {"https://[::1/", kBadHost},
      {"https://[::1]x/", kBadHost},
      {"https://exa<mple.com/", kBadHost},
      {"https://exa\"mple.com/", kBadHost},
      {"https://example.com:99999/", kPort},
      {"https://example.com:123456/", kPort},
      {"https://example.com:80a/", kPort},
      {"https://example.com:443:1/", kPort},
      {"https://exa mple.com", kSpace},
      {"https://example.com/a b.png", kSpace},
      {" https://example.com", kSpace},
      {"https://example.com/\t", kSpace},
      {"https://example.com/\n", kSpace},
      {Bytes("https://example.com/\0"), kSpace},
      {"https://example.com/\x7F", kSpace},
      {"https://\xE4\xBE\x8B\xE3\x81\x88.jp/", kAscii},
      {"https://example.com/\xFF", kAscii},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    CheckStatus(ValidateAvatarUrl(c.input), c.error);
  }
}

// ---------------------------------------------------------------------------
// timezone

TEST_CASE("validate: ValidateTimezone accepts IANA names from the system database", "[domain][validate]") {
  for (const char* tz : {"Europe/Paris", "UTC", "Etc/UTC", "America/New_York",
                         "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Etc/GMT+5", "Etc/GMT-14"}) {
    CAPTURE(tz);
    CheckStatus(ValidateTimezone(tz), "");
  }
}

TEST_CASE("validate: ValidateTimezone refuses unknown names, paths and non-zone files", "[domain][validate]") {
  const std::vector<Case> cases = {
      {"", "timezone: must not be empty"},
      {"Mars/Base", "timezone: unknown time zone \"Mars/Base\""},
      {"../etc/passwd", "timezone: unknown time zone \"../etc/passwd\""},
      {"/etc/passwd", "timezone: unknown time zone \"/etc/passwd\""},
      {"Europe/", "timezone: unknown time zone \"Europe/\""},
      {"Europe", "timezone: unknown time zone \"Europe\""},
      {"europe/paris", "timezone: unknown time zone \"europe/paris\""},
      {"EUROPE/PARIS", "timezone: unknown time zone \"EUROPE/PARIS\""},
      {"utc", "timezone: unknown time zone \"utc\""},
      {"Europe/Paris/", "timezone: unknown time zone \"Europe/Paris/\""},
      {"Europe//Paris", "timezone: unknown time zone \"Europe//Paris\""},
      {"Europe/../Europe/Paris", "timezone: unknown time zone \"Europe/../Europe/Paris\""},
      {"./UTC", "timezone: unknown time zone \"./UTC\""},
      {"zone.tab", "timezone: unknown time zone \"zone.tab\""},
      {"zone1970.tab", "timezone: unknown time zone \"zone1970.tab\""},
      {"iso3166.tab", "timezone: unknown time zone \"iso3166.tab\""},
      {"tzdata.zi", "timezone: unknown time zone \"tzdata.zi\""},
      {"leapseconds", "timezone: unknown time zone \"leapseconds\""},
      {"posixrules", "timezone: unknown time zone \"posixrules\""},
      {"localtime", "timezone: unknown time zone \"localtime\""},
      {"Factory", "timezone: unknown time zone \"Factory\""},
      {"right/Europe/Paris", "timezone: unknown time zone \"right/Europe/Paris\""},
      {"posix/Europe/Paris", "timezone: unknown time zone \"posix/Europe/Paris\""},
      // Names that are not short printable ASCII are not echoed back.
      {" UTC", "timezone: unknown time zone"},
      {"UTC ", "timezone: unknown time zone"},
      {Bytes("UTC\0"), "timezone: unknown time zone"},
      {"UTC\n", "timezone: unknown time zone"},
      {"Europe/\"Paris", "timezone: unknown time zone"},
      {"\xFF\xFE", "timezone: unknown time zone"},
      {Repeat("A", 65), "timezone: unknown time zone"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    CheckStatus(ValidateTimezone(c.input), c.error);
  }
}

TEST_CASE("validate: TimezoneNames reads Zone and Link lines of tzdata.zi and skips the rest",
          "[domain][validate]") {
  TempDir dir;
  dir.Write("tzdata.zi",
            "# version 2099z\n"
            "# ddeps backzone zone.tab\n"
            "R d 1916 o - Jun 14 23s 1 S\n"
            "Z Europe/Paris 0:9:21 - LMT 1891 Mar 16\n"
            "0:9:21 - PMT 1911 Mar 11\n"
            "1 E CE%sT\n"
            "Z Etc/UTC 0 - UTC\n"
            "Z America/Argentina/Buenos_Aires -3:53:48 - LMT 1894 O 31\n"
            "Z Factory 0 - -00\n"
            "Z ../evil 0 - X\n"
            "Z /abs 0 - X\n"
            "Z Bad//Name 0 - X\n"
            "L Etc/UTC UTC\n"
            "L Europe/Paris Europe/Monaco\n"
            "L Europe/Paris\n"
            "\n");
  // Present but ignored: a .zi file wins over the tables.
  dir.Write("zone1970.tab", "FR\t+4852+00220\tEurope/Lyon\n");
  Result<TimezoneNames> names = TimezoneNames::LoadFromDir(dir.path());
  REQUIRE(names.ok());
  CHECK(names->size() == 5);
  for (const char* tz : {"Europe/Paris", "Etc/UTC", "America/Argentina/Buenos_Aires", "UTC", "Europe/Monaco"}) {
    CAPTURE(tz);
    CHECK(names->Contains(tz));
    CheckStatus(ValidateTimezone(tz, *names), "");
  }
  for (const char* tz : {"Factory", "../evil", "/abs", "Bad//Name", "Europe/Lyon", "E", "R", "d", "0:9:21"}) {
    CAPTURE(tz);
    CHECK_FALSE(names->Contains(tz));
  }
  CheckStatus(ValidateTimezone("Europe/Lyon", *names), "timezone: unknown time zone \"Europe/Lyon\"");
}

TEST_CASE("validate: TimezoneNames falls back to zone1970.tab and zone.tab plus UTC", "[domain][validate]") {
  TempDir dir;
  dir.Write("zone1970.tab",
            "# comment\n"
            "FR,MC\t+4852+00220\tEurope/Paris\n"
            "AR\t-3436-05827\tAmerica/Argentina/Buenos_Aires\tBuenos Aires (BA, CF)\n"
            "malformed line\n");
  dir.Write("zone.tab", "MC\t+4342+00723\tEurope/Monaco\nXX\t+0000+00000\t../../etc/passwd\n");
  Result<TimezoneNames> names = TimezoneNames::LoadFromDir(dir.path());
  REQUIRE(names.ok());
  CHECK(names->size() == 5);
  for (const char* tz : {"Europe/Paris", "America/Argentina/Buenos_Aires", "Europe/Monaco", "UTC", "Etc/UTC"}) {
    CAPTURE(tz);
    CHECK(names->Contains(tz));
  }
  CHECK_FALSE(names->Contains("../../etc/passwd"));
  CHECK_FALSE(names->Contains("Buenos Aires (BA, CF)"));
}

TEST_CASE("validate: TimezoneNames reports an IOError when the directory has no database", "[domain][validate]") {
  TempDir dir;
  Result<TimezoneNames> empty = TimezoneNames::LoadFromDir(dir.path());
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == Code::kIOError);

  Result<TimezoneNames> missing = TimezoneNames::LoadFromDir(dir.path() + "/does-not-exist");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kIOError);

  dir.Write("tzdata.zi", "# only comments\nR x 1 2 - 3\n");
  CHECK_FALSE(TimezoneNames::LoadFromDir(dir.path()).ok());

  const TimezoneNames minimal = TimezoneNames::Minimal();
  CheckStatus(ValidateTimezone("UTC", minimal), "");
  CheckStatus(ValidateTimezone("Etc/UTC", minimal), "");
  CheckStatus(ValidateTimezone("Europe/Paris", minimal), "timezone: unknown time zone \"Europe/Paris\"");
}

// ---------------------------------------------------------------------------
// settings

TEST_CASE("validate: ValidateSettings accepts known keys with the right types and keeps unknown keys",
          "[domain][validate]") {
  const std::vector<Json> ok = {
      Json::object(),
      Json{{"doNotDisturb", true}},
      Json{{"doNotDisturb", false}, {"showQuietHoursInStatus", true}},
      Json{{"quietHoursStart", "00:00"}, {"quietHoursEnd", "23:59"}},
      Json{{"quietHoursStart", "22:30"}, {"quietHoursEnd", "07:00"}},
      Json{{"theme", Json::object()}},
      Json{{"theme", {{"mode", "dark"}, {"accent", {1, 2, 3}}, {"anything", nullptr}}}},
      Json{{"somethingNew", {{"nested", {1, "two", nullptr, 3.5}}}}, {"flag", "x"}},
      Json::parse(R"({"doNotDisturb":true,"quietHoursStart":"12:00","quietHoursEnd":"13:00",
                      "showQuietHoursInStatus":false,"theme":{"x":1},"extra":[{"a":{}}]})"),
  };
  for (const auto& s : ok) {
    CAPTURE(s.dump());
    CheckStatus(ValidateSettings(s), "");
  }
}

TEST_CASE("validate: ValidateSettings refuses wrong types, bad HH:MM and non-objects", "[domain][validate]") {
  struct SettingsCase {
    Json value;
    std::string error;
  };
  const std::vector<SettingsCase> cases = {
      {Json::array(), "settings: expected an object"},
      {Json("dark"), "settings: expected an object"},
      {Json(nullptr), "settings: expected an object"},
      {Json(1), "settings: expected an object"},
      {Json{{"doNotDisturb", "true"}}, "settings.doNotDisturb: expected a boolean"},
      {Json{{"doNotDisturb", 1}}, "settings.doNotDisturb: expected a boolean"},
      {Json{{"doNotDisturb", nullptr}}, "settings.doNotDisturb: expected a boolean"},
      {Json{{"showQuietHoursInStatus", 0}}, "settings.showQuietHoursInStatus: expected a boolean"},
      {Json{{"quietHoursStart", "24:00"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "12:60"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "9:00"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "09:00:00"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "0900"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "ab:cd"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", "-1:00"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", " 9:00"}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", ""}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"quietHoursStart", 900}}, "settings.quietHoursStart: expected a string"},
      {Json{{"quietHoursStart", nullptr}}, "settings.quietHoursStart: expected a string"},
      {Json{{"quietHoursEnd", "99:99"}}, "settings.quietHoursEnd: must be HH:MM"},
      {Json{{"quietHoursEnd", true}}, "settings.quietHoursEnd: expected a string"},
      {Json{{"quietHoursStart", "08:00"}, {"quietHoursEnd", "8:00"}}, "settings.quietHoursEnd: must be HH:MM"},
      {Json{{"theme", "dark"}}, "settings.theme: expected an object"},
      {Json{{"theme", Json::array()}}, "settings.theme: expected an object"},
      {Json{{"theme", nullptr}}, "settings.theme: expected an object"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.value.dump());
    CheckStatus(ValidateSettings(c.value), c.error);
  }
}

TEST_CASE("validate: ValidateSettings allows 16384 serialized bytes and refuses 16385", "[domain][validate]") {
  // {"k":"…"} is 8 bytes plus the string.
  Json at_limit = {{"k", std::string(kMaxSettingsBytes - 8, 'x')}};
  REQUIRE(at_limit.dump().size() == 16384);
  CheckStatus(ValidateSettings(at_limit), "");

  Json over = {{"k", std::string(kMaxSettingsBytes - 7, 'x')}};
  REQUIRE(over.dump().size() == 16385);
  CheckStatus(ValidateSettings(over), "settings: must be at most 16384 bytes when serialized");

  // Multibyte characters count in bytes, as they are serialized.
  Json multibyte = {{"k", Repeat("\xE2\x82\xAC", 5460)}};  // 16380 bytes + 8
  REQUIRE(multibyte.dump().size() == 16388);
  CheckStatus(ValidateSettings(multibyte), "settings: must be at most 16384 bytes when serialized");

  Json huge = {{"k", std::string(1 << 20, 'x')}};
  CheckStatus(ValidateSettings(huge), "settings: must be at most 16384 bytes when serialized");
}

TEST_CASE("validate: ValidateSettings refuses deep nesting and invalid UTF-8 without throwing",
          "[domain][validate]") {
  auto nested = [](size_t levels) {  // `levels` containers, the outer one an object
    Json inner = Json::object();
    for (size_t i = 1; i < levels; ++i) inner = Json{{"a", std::move(inner)}};
    return inner;
  };
  CheckStatus(ValidateSettings(nested(kMaxSettingsDepth)), "");
  CheckStatus(ValidateSettings(nested(kMaxSettingsDepth + 1)),
              "settings: must not be nested more than 64 levels deep");

  // Deep enough to overflow a recursive serializer under ASan if it ran.
  const std::string deep = "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  Json deep_json = Json::parse(deep);
  CHECK_NOTHROW(CheckStatus(ValidateSettings(deep_json), "settings: must not be nested more than 64 levels deep"));

  Json bad_value = {{"k", std::string("\xC3\x28")}};
  CHECK_NOTHROW(CheckStatus(ValidateSettings(bad_value), "settings: contains invalid UTF-8"));
  Json bad_key = Json::object();
  bad_key[std::string("\xFFkey")] = 1;
  CHECK_NOTHROW(CheckStatus(ValidateSettings(bad_key), "settings: contains invalid UTF-8"));
  Json bad_nested = {{"theme", {{"list", {"ok", std::string("\xED\xA0\x80")}}}}};
  CHECK_NOTHROW(CheckStatus(ValidateSettings(bad_nested), "settings: contains invalid UTF-8"));
}

// ---------------------------------------------------------------------------
// user.update payload

TEST_CASE("validate: ParseUpdatePayload with only an id is an empty patch with a lower-cased id",
          "[domain][validate]") {
  Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", "3F2B8C1E-9D4A-4E7B-8A6C-1F2E3D4C5B6A"}});
  REQUIRE(patch.ok());
  CHECK(patch->id == kUuid);
  CHECK(patch->empty());
  CHECK_FALSE(patch->first_name);
  CHECK_FALSE(patch->last_name);
  CHECK_FALSE(patch->email);
  CHECK_FALSE(patch->avatar_url);
  CHECK_FALSE(patch->timezone);
  CHECK_FALSE(patch->settings);
}

TEST_CASE("validate: ParseUpdatePayload reads every field", "[domain][validate]") {
  const Json settings = {{"doNotDisturb", true}, {"quietHoursStart", "22:00"}, {"custom", {{"x", 1}}}};
  Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", kUuid},
                                                    {"firstName", "Zo\xC3\xAB"},
                                                    {"lastName", "Smith"},
                                                    {"email", "Zoe@Example.com"},
                                                    {"avatarUrl", "https://example.com/z.png"},
                                                    {"timezone", "Europe/Paris"},
                                                    {"settings", settings}});
  REQUIRE(patch.ok());
  CHECK_FALSE(patch->empty());
  CHECK(patch->id == kUuid);
  CHECK(patch->first_name == "Zo\xC3\xAB");
  CHECK(patch->last_name == "Smith");
  CHECK(patch->email == "Zoe@Example.com");  // stored as given; uniqueness uses EmailKey
  REQUIRE(patch->avatar_url);
  CHECK(*patch->avatar_url == "https://example.com/z.png");
  REQUIRE(patch->timezone);
  CHECK(*patch->timezone == "Europe/Paris");
  REQUIRE(patch->settings);
  REQUIRE(*patch->settings);
  CHECK(**patch->settings == settings);  // unknown keys kept
}

TEST_CASE("validate: ParseUpdatePayload reads null as clear for avatarUrl, timezone and settings",
          "[domain][validate]") {
  Result<UserPatch> patch =
      ParseUpdatePayload(Json{{"id", kUuid}, {"avatarUrl", nullptr}, {"timezone", nullptr}, {"settings", nullptr}});
  REQUIRE(patch.ok());
  CHECK_FALSE(patch->empty());
  REQUIRE(patch->avatar_url);
  CHECK_FALSE(*patch->avatar_url);
  REQUIRE(patch->timezone);
  CHECK_FALSE(*patch->timezone);
  REQUIRE(patch->settings);
  CHECK_FALSE(*patch->settings);

  // Each one alone makes the patch non-empty.
  for (const char* field : {"avatarUrl", "timezone", "settings"}) {
    CAPTURE(field);
    Result<UserPatch> one = ParseUpdatePayload(Json{{"id", kUuid}, {field, nullptr}});
    REQUIRE(one.ok());
    CHECK_FALSE(one->empty());
  }
}

TEST_CASE("validate: ParseUpdatePayload ignores unknown fields", "[domain][validate]") {
  Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", kUuid},
                                                    {"firstName", "Ann"},
                                                    {"userType", "machine"},
                                                    {"isOnboarded", true},
                                                    {"deletedAt", nullptr},
                                                    {"role", {{"nested", 1}}},
                                                    {"firstname", 42}});
  REQUIRE(patch.ok());
  CHECK(patch->first_name == "Ann");
  CHECK_FALSE(patch->last_name);
}

struct PayloadCase {
  Json payload;
  std::string error;
};

TEST_CASE("validate: ParseUpdatePayload refuses bad ids and non-object payloads", "[domain][validate]") {
  const std::vector<PayloadCase> cases = {
      {Json::object(), "id: required"},
      {Json(nullptr), "id: required"},  // an absent payload
      {Json{{"firstName", "Ann"}}, "id: required"},
      {Json{{"id", ""}}, "id: required"},
      {Json{{"id", nullptr}}, "id: expected a string"},
      {Json{{"id", 42}}, "id: expected a string"},
      {Json{{"id", Json::array({kUuid})}}, "id: expected a string"},
      {Json{{"id", "not-a-uuid"}}, "id: must be a UUID"},
      {Json{{"id", "3f2b8c1e9d4a4e7b8a6c1f2e3d4c5b6a"}}, "id: must be a UUID"},
      {Json{{"id", "{3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6a}"}}, "id: must be a UUID"},
      {Json{{"id", "3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6"}}, "id: must be a UUID"},
      {Json{{"id", "3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6g"}}, "id: must be a UUID"},
      {Json{{"id", "3f2b8c1e-9d4a-4e7b-8a6c1-f2e3d4c5b6a"}}, "id: must be a UUID"},
      {Json{{"id", " " + kUuid}}, "id: must be a UUID"},
      {Json{{"id", "user_01H5JQDV7R7ATEYZDEG0W5PRYS"}}, "id: must be a UUID"},  // a WorkOS id
      {Json::array(), "payload: expected an object"},
      {Json("x"), "payload: expected an object"},
      {Json(1), "payload: expected an object"},
      {Json(true), "payload: expected an object"},
      {Json(Json::value_t::discarded), "payload: expected an object"},
      {Json::binary({1, 2, 3}), "payload: expected an object"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.payload.dump());
    Result<UserPatch> patch = ParseUpdatePayload(c.payload);
    REQUIRE_FALSE(patch.ok());
    CheckStatus(patch.status(), c.error);
  }
}

TEST_CASE("validate: ParseUpdatePayload names the field on type errors and null for non-nullable fields",
          "[domain][validate]") {
  const std::vector<Json> not_strings = {Json(nullptr), Json(1), Json(true), Json::array(), Json::object(),
                                         Json::binary({0})};
  for (const Json& bad : not_strings) {
    CAPTURE(bad.dump());
    for (const char* field : {"firstName", "lastName", "email"}) {
      CAPTURE(field);
      Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", kUuid}, {field, bad}});
      REQUIRE_FALSE(patch.ok());
      CheckStatus(patch.status(), std::string(field) + ": expected a string");
    }
    if (bad.is_null()) continue;
    for (const char* field : {"avatarUrl", "timezone"}) {
      CAPTURE(field);
      Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", kUuid}, {field, bad}});
      REQUIRE_FALSE(patch.ok());
      CheckStatus(patch.status(), std::string(field) + ": expected a string or null");
    }
    if (bad.is_object()) continue;
    Result<UserPatch> patch = ParseUpdatePayload(Json{{"id", kUuid}, {"settings", bad}});
    REQUIRE_FALSE(patch.ok());
    CheckStatus(patch.status(), "settings: expected an object or null");
  }
  Result<UserPatch> text = ParseUpdatePayload(Json{{"id", kUuid}, {"settings", "{}"}});
  REQUIRE_FALSE(text.ok());
  CheckStatus(text.status(), "settings: expected an object or null");
}

TEST_CASE("validate: ParseUpdatePayload passes validator messages through, first failing field first",
          "[domain][validate]") {
  const std::vector<PayloadCase> cases = {
      {Json{{"id", kUuid}, {"firstName", ""}}, "firstName: must be 1 to 100 characters"},
      {Json{{"id", kUuid}, {"firstName", Repeat("\xC3\xA9", 101)}}, "firstName: must be 1 to 100 characters"},
      {Json{{"id", kUuid}, {"lastName", " "}}, "lastName: must not be blank"},
      {Json{{"id", kUuid}, {"lastName", std::string("\xC3\x28")}}, "lastName: not valid UTF-8"},
      {Json{{"id", kUuid}, {"email", "bad"}}, "email: not a valid email address"},
      {Json{{"id", kUuid}, {"email", ""}}, "email: must not be empty"},
      {Json{{"id", kUuid}, {"avatarUrl", "ftp://example.com/a.png"}}, "avatarUrl: must be an http or https URL"},
      {Json{{"id", kUuid}, {"avatarUrl", ""}}, "avatarUrl: must not be empty"},
      {Json{{"id", kUuid}, {"timezone", "Mars/Base"}}, "timezone: unknown time zone \"Mars/Base\""},
      {Json{{"id", kUuid}, {"timezone", ""}}, "timezone: must not be empty"},
      {Json{{"id", kUuid}, {"settings", {{"quietHoursStart", "25:00"}}}}, "settings.quietHoursStart: must be HH:MM"},
      {Json{{"id", kUuid}, {"settings", {{"k", std::string(20000, 'x')}}}},
       "settings: must be at most 16384 bytes when serialized"},
      {Json{{"id", kUuid}, {"settings", {{"k", std::string("\xFF")}}}}, "settings: contains invalid UTF-8"},
      // Order: id, firstName, lastName, email, avatarUrl, timezone, settings.
      {Json{{"id", "nope"}, {"firstName", ""}}, "id: must be a UUID"},
      {Json{{"id", kUuid}, {"settings", 1}, {"timezone", 1}, {"avatarUrl", 1}, {"email", 1}, {"lastName", 1},
            {"firstName", 1}},
       "firstName: expected a string"},
      {Json{{"id", kUuid}, {"settings", 1}, {"timezone", 1}, {"avatarUrl", 1}, {"email", 1}, {"lastName", 1}},
       "lastName: expected a string"},
      {Json{{"id", kUuid}, {"settings", 1}, {"timezone", 1}, {"avatarUrl", 1}, {"email", 1}},
       "email: expected a string"},
      {Json{{"id", kUuid}, {"settings", 1}, {"timezone", 1}, {"avatarUrl", 1}},
       "avatarUrl: expected a string or null"},
      {Json{{"id", kUuid}, {"settings", 1}, {"timezone", 1}}, "timezone: expected a string or null"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.payload.dump(-1, ' ', false, Json::error_handler_t::replace));
    REQUIRE_NOTHROW(ParseUpdatePayload(c.payload));
    Result<UserPatch> patch = ParseUpdatePayload(c.payload);
    REQUIRE_FALSE(patch.ok());
    CheckStatus(patch.status(), c.error);
  }
}

TEST_CASE("validate: ParseUpdatePayload never throws on strings holding invalid UTF-8", "[domain][validate]") {
  // A lenient JSON reader can hand over strings that are not UTF-8; dumping
  // them would throw type_error 316, so nothing here may dump them.
  Json payload = {{"id", kUuid}};
  for (const char* field : {"firstName", "lastName", "email", "avatarUrl", "timezone"}) {
    payload[field] = std::string("\xC0\xAF");
    CAPTURE(field);
    CHECK_NOTHROW(ParseUpdatePayload(payload).ok());
    CHECK_FALSE(ParseUpdatePayload(payload).ok());
    payload.erase(field);
  }
  payload["settings"] = Json{{std::string("\xFF"), std::string("\xFE")}};
  CHECK_NOTHROW(ParseUpdatePayload(payload).ok());
  CHECK_FALSE(ParseUpdatePayload(payload).ok());
}

// ---------------------------------------------------------------------------
// user.delete payload

TEST_CASE("validate: ParseDeletePayload returns the lower-cased id and ignores unknown fields",
          "[domain][validate]") {
  Result<std::string> id = ParseDeletePayload(Json{{"id", "3F2B8C1E-9D4A-4E7B-8A6C-1F2E3D4C5B6A"}, {"hard", true}});
  REQUIRE(id.ok());
  CHECK(*id == kUuid);
}

TEST_CASE("validate: ParseDeletePayload refuses missing, mistyped and malformed ids", "[domain][validate]") {
  const std::vector<PayloadCase> cases = {
      {Json::object(), "id: required"},
      {Json(nullptr), "id: required"},
      {Json{{"id", ""}}, "id: required"},
      {Json{{"id", nullptr}}, "id: expected a string"},
      {Json{{"id", 7}}, "id: expected a string"},
      {Json{{"id", "../../x"}}, "id: must be a UUID"},
      {Json{{"id", std::string("\xFF")}}, "id: must be a UUID"},
      {Json::array({kUuid}), "payload: expected an object"},
      {Json(kUuid), "payload: expected an object"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.payload.dump(-1, ' ', false, Json::error_handler_t::replace));
    Result<std::string> id = ParseDeletePayload(c.payload);
    REQUIRE_FALSE(id.ok());
    CheckStatus(id.status(), c.error);
  }
}

TEST_CASE("validate: IsUuid accepts 8-4-4-4-12 hex in either case", "[domain][validate]") {
  CHECK(IsUuid(kUuid));
  CHECK(IsUuid("3F2B8C1E-9D4A-4E7B-8A6C-1F2E3D4C5B6A"));
  CHECK(IsUuid("00000000-0000-0000-0000-000000000000"));
  CHECK_FALSE(IsUuid(""));
  CHECK_FALSE(IsUuid("3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6a0"));
  CHECK_FALSE(IsUuid("3f2b8c1e_9d4a_4e7b_8a6c_1f2e3d4c5b6a"));
  CHECK_FALSE(IsUuid("3f2b8c1e-9d4a-4e7b-8a6c-1f2e3d4c5b6\xC3"));
}

}  // namespace
}  // namespace usersd::domain
