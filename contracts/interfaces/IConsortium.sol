// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsortium
/// @notice What the registries need to know about consortium membership.
interface IConsortium {
    /// @notice True if `account` is an active member holding at least one of the roles in `roleMask`.
    /// @param account Address to check.
    /// @param roleMask Bitmask of roles (see {Roles}); any one of them suffices.
    function hasAnyRole(address account, uint32 roleMask) external view returns (bool);

    /// @notice True if `account` is an active member (any role).
    /// @param account Address to check.
    function isMember(address account) external view returns (bool);
}
