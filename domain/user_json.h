// The User and CurrentUser payloads of SPEC section 1, from a stored record.
//
// Two forms with the same text: the DOM (ToUserJson, ToCurrentUserJson) for
// callers that edit or inspect the value, and Append* that write the JSON
// text straight into a string for the hot replies (user.me, mutation
// results), skipping the DOM's per-field allocations. The text is exactly
// what nlohmann's serializer makes of the DOM (keys in std::map order,
// invalid UTF-8 replaced), which tests/unit/domain_user_json_test.cc checks.
//
// Pure functions; thread-compatible.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "auth/jwt.h"
#include "store/store.h"

namespace usersd::domain {

using Json = nlohmann::json;

Json ToUserJson(const store::UserRecord& u);
Json ToCurrentUserJson(const store::UserRecord& u, const auth::Claims& caller);
// {"data": User, "transactionId": n}
Json ToMutationResultJson(const store::UserRecord& u);

void AppendUserJson(std::string& out, const store::UserRecord& u);
void AppendCurrentUserJson(std::string& out, const store::UserRecord& u, const auth::Claims& caller);
void AppendMutationResultJson(std::string& out, const store::UserRecord& u);

}  // namespace usersd::domain
