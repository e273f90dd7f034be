#include "domain/identity.h"

#include <sys/random.h>

#include <openssl/evp.h>

#include <cstdio>

#include "common/text.h"
#include "domain/validate.h"

namespace usersd::domain {

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}
}  // namespace

std::string FormatUuid(const unsigned char* b, int version) {
  unsigned char v = static_cast<unsigned char>((b[6] & 0x0f) | (version << 4));
  unsigned char r = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  char out[37];
  snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], v, b[7], r, b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::string UuidV5(std::string_view namespace_uuid, std::string_view name) {
  unsigned char ns[16] = {};
  size_t n = 0;
  for (size_t i = 0; i + 1 < namespace_uuid.size() && n < 16;) {
    if (namespace_uuid[i] == '-') {
      ++i;
      continue;
    }
    ns[n++] = static_cast<unsigned char>(HexValue(namespace_uuid[i]) << 4 | HexValue(namespace_uuid[i + 1]));
    i += 2;
  }
  std::string input(reinterpret_cast<const char*>(ns), sizeof ns);
  input.append(name);
  unsigned char h[EVP_MAX_MD_SIZE] = {};
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), h, &len, EVP_sha1(), nullptr);
  return FormatUuid(h, 5);
}

std::optional<std::string> IdFromExternalId(const std::optional<std::string>& external_id) {
  if (!external_id || !IsUuid(*external_id)) return std::nullopt;
  return ToLowerAscii(*external_id);
}

std::string IdForWorkosUser(std::string_view ns, std::string_view workos_id,
                            const std::optional<std::string>& external_id) {
  if (auto id = IdFromExternalId(external_id)) return *id;
  return UuidV5(ns, workos_id);
}

std::string NewUuid() {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return FormatUuid(b, 4);
}

}  // namespace usersd::domain
