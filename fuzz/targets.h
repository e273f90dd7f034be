// The bodies of the libFuzzer targets, callable from ordinary code.
//
// Each Fuzz* function takes one input, exercises one parser of untrusted
// input, checks its documented properties, and returns 0. A broken property
// prints "fuzz check failed: ..." and aborts, which libFuzzer reports as a
// crash and a Catch2 test as a failed run. The libFuzzer mains
// (fuzz/*_fuzz.cc) and tests/unit/fuzz_regressions_test.cc, which replays
// fuzz/corpus/<name>/ and fuzz/regressions/<name>/ in every `make test`, call
// the same functions, so a fixed finding stays fixed without a clang build.
//
// Thread-compatible; the targets keep no state between inputs beyond
// immutable, lazily built fixtures (a JWKS, the time zone set).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace usersd::fuzz {

// ipc/protocol.h: ParseLine on the bytes of one line, then, for what parsed,
// the encoders' promise of one line of valid JSON and a request round trip.
int FuzzProtocolLine(const uint8_t* data, size_t size);

// ipc/line_splitter.h: a byte stream split into chunks chosen by the input,
// compared with a reference framing.
int FuzzLineFraming(const uint8_t* data, size_t size);

// auth/jwt.h: Verify, PeekKid and Jwks::Parse.
int FuzzAuthJwt(const uint8_t* data, size_t size);

// config/config.h: ParseConfig and its ToYaml round trip.
int FuzzConfig(const uint8_t* data, size_t size);

// domain/validate.h: the update/delete payload parsers and field validators.
int FuzzDomainValidate(const uint8_t* data, size_t size);

// store/record_codec.h: DecodeUser on the bytes of a stored record, against
// the DOM form it replaced.
int FuzzStoreRecord(const uint8_t* data, size_t size);

// sync/workos_pages.h: the events and users list pages WorkOS answers, read,
// sorted, filtered by feed position and reduced to the last event per user.
int FuzzWorkosPages(const uint8_t* data, size_t size);

// domain/shared_fields.h and remote_user.h: the metadata document of shared
// fields in a WorkOS user's metadata, decoded, written back and applied.
int FuzzSharedFields(const uint8_t* data, size_t size);

struct FuzzTarget {
  std::string_view name;  // the corpus directory: fuzz/corpus/<name>/
  int (*run)(const uint8_t* data, size_t size);
};

// Every target, in a fixed order. The returned span is static.
std::span<const FuzzTarget> AllTargets();

}  // namespace usersd::fuzz

namespace usersd::fuzz::internal {
[[noreturn]] void CheckFailed(const char* cond, const char* file, int line);
}  // namespace usersd::fuzz::internal

// Prints the condition and location and aborts when `cond` is false. Active
// in every build type, unlike assert().
#define USERSD_FUZZ_CHECK(cond) ((cond) ? (void)0 : ::usersd::fuzz::internal::CheckFailed(#cond, __FILE__, __LINE__))
