// Identity: which id a WorkOS user has on every host (SPEC 4b "Identity").
//
// The id of a WorkOS user is its `external_id` when that is a UUID, and
// otherwise the name-based UUID (RFC 9562 version 5, SHA-1) of the WorkOS
// user id in the namespace `identity.namespace`. Every host computes the same
// id, online or offline, so no host needs another to agree.
//
// No I/O, no clock, no state: pure functions over strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace usersd::domain {

// identity.namespace when the config leaves it null: the version-5 UUID of
// "urn:usersd:workos-user" in RFC 9562's URL namespace. Part of the contract:
// changing it changes every id a new host computes.
inline constexpr std::string_view kDefaultIdentityNamespace = "2d0a2811-61d1-50ed-bfc0-e2ac6ad2e741";

// A fresh random (version 4) UUID in lower case.
std::string NewUuid();

// The canonical lower-case text of the 16 bytes `b` as a UUID of `version`
// (its version and RFC 9562 variant bits set; `b` itself is not changed).
std::string FormatUuid(const unsigned char* b, int version);

// The version-5 UUID of `name` in `namespace_uuid` (lower case).
// REQUIRES: IsUuid(namespace_uuid).
std::string UuidV5(std::string_view namespace_uuid, std::string_view name);

// The id a host gives a WorkOS user it stores for the first time:
// `external_id` lower-cased when it is a UUID, else UuidV5(ns, workos_id).
std::string IdForWorkosUser(std::string_view ns, std::string_view workos_id,
                            const std::optional<std::string>& external_id);

// `external_id` lower-cased when it is a UUID (it carries a usersd id);
// nullopt for none, "" or an application's own value.
std::optional<std::string> IdFromExternalId(const std::optional<std::string>& external_id);

}  // namespace usersd::domain
