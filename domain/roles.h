// Roles (SPEC 3: a session's `role` claim): the three a session may carry,
// how they rank, and what any other value reads as. The one place that
// knows the role names; the org-admin policy (user_mutations.cc
// CheckTarget), the stored role, the replies and the admin import read
// them here.
//
// Pure functions; thread-safe.
#pragma once

#include <string_view>

namespace usersd::domain {

inline constexpr std::string_view kRoleOwner = "owner";
inline constexpr std::string_view kRoleAdmin = "admin";
inline constexpr std::string_view kRoleMember = "member";

// One of the three names.
inline bool IsKnownRole(std::string_view role) {
  return role == kRoleOwner || role == kRoleAdmin || role == kRoleMember;
}

// An owner or an admin of its organization: may manage other users when
// policy.org_admins_manage_members allows it.
inline bool IsAdminRole(std::string_view role) {
  return role == kRoleOwner || role == kRoleAdmin;
}

// Owners outrank admins, who outrank members (and anything else).
inline int RoleRank(std::string_view role) {
  return role == kRoleOwner ? 2 : role == kRoleAdmin ? 1 : 0;
}

// The role a session's claim counts as: owner or admin as given, anything
// else (absent, unknown) member.
inline std::string_view SessionRole(std::string_view claim) {
  return IsAdminRole(claim) ? claim : kRoleMember;
}

}  // namespace usersd::domain
