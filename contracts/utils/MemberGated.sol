// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "../interfaces/IConsortium.sol";

/// @title MemberGated
/// @notice Base for contracts whose writers must be consortium members with given roles.
/// @dev The consortium address is immutable: moving to a new consortium means deploying new registries,
/// which keeps the trust root of every registry fixed for auditors.
abstract contract MemberGated {
    /// @notice The membership contract that decides roles.
    IConsortium public immutable consortium;

    /// @notice `account` lacks every role in `requiredRoles` or is not an active member.
    error MissingRole(address account, uint32 requiredRoles);

    /// @notice The consortium address given at deployment was zero.
    error ZeroConsortium();

    constructor(IConsortium consortium_) {
        if (address(consortium_) == address(0)) revert ZeroConsortium();
        consortium = consortium_;
    }

    modifier onlyRole(uint32 roleMask) {
        if (!consortium.hasAnyRole(msg.sender, roleMask)) revert MissingRole(msg.sender, roleMask);
        _;
    }
}
