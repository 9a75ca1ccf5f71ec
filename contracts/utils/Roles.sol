// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Roles
/// @notice Consortium role bits. A member holds a bitmask of these; checks pass when any required bit is held.
/// @dev The numbering is part of the on-chain data model: append new roles, never renumber.
library Roles {
    uint32 internal constant HOSPITAL = 1 << 0;
    uint32 internal constant CLINIC = 1 << 1;
    uint32 internal constant LAB = 1 << 2;
    uint32 internal constant CDC = 1 << 3;
    uint32 internal constant MANUFACTURER = 1 << 4;
    uint32 internal constant RESEARCHER = 1 << 5;
    uint32 internal constant AUDITOR = 1 << 6;
    uint32 internal constant RELAYER = 1 << 7;
    uint32 internal constant EMERGENCY = 1 << 8;

    /// @dev Every defined role; a mask with other bits set is invalid.
    uint32 internal constant ALL = (1 << 9) - 1;

    /// @dev Roles that keep patient records and may anchor them and log accesses to them.
    uint32 internal constant CUSTODIAN = HOSPITAL | CLINIC | LAB | CDC;
}
