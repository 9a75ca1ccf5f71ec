// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {MemberGated} from "./utils/MemberGated.sol";
import {Roles} from "./utils/Roles.sol";

/// @title AccessLog
/// @notice Append-only log of every release of a patient record: custodians write a batch of accesses before
/// releasing keys, and anyone can later check each access against the consent state at its block.
/// @dev The contract does not re-check consent: doing so per access would multiply gas and the check is
/// reproducible off chain from {ConsentRegistry} events (the auditor does exactly that). It does check that
/// the writer is a custodian and that each entry names an authorization kind.
contract AccessLog is MemberGated {
    /// @notice What authorized an access.
    enum AuthKind {
        None,
        Grant, // authId is a ConsentRegistry grant id
        BreakGlass, // authId is a ConsentRegistry break-glass id
        Patient, // the patient read their own record; authId 0
        Custodian // the custodian's own staff under its duty of care; authId 0
    }

    /// @notice One access to log.
    /// @param patient The patient whose record was read.
    /// @param accessor The reader: an institution or person address.
    /// @param recordId The record read.
    /// @param purpose Purpose code (see ConsentRegistry).
    /// @param authKind What authorized it.
    /// @param authId Grant or break-glass id, per `authKind`.
    /// @param staffRef Pseudonymous reference of the staff member who acted (keyed hash, 0 if none).
    struct Access {
        address patient;
        address accessor;
        bytes32 recordId;
        uint8 purpose;
        AuthKind authKind;
        uint256 authId;
        bytes32 staffRef;
    }

    /// @notice Number of accesses ever logged.
    uint256 public accessCount;

    /// @notice An access was logged by `custodian`; `sequence` counts accesses from 1 across the log.
    event AccessLogged(
        address indexed patient,
        address indexed accessor,
        bytes32 indexed recordId,
        address custodian,
        uint8 purpose,
        AuthKind authKind,
        uint256 authId,
        bytes32 staffRef,
        uint256 sequence
    );

    /// @notice The batch is empty.
    error EmptyBatch();
    /// @notice An entry has a zero patient, accessor or record id, or no authorization kind.
    error InvalidAccess(uint256 index);

    /// @param consortium_ The membership contract.
    constructor(IConsortium consortium_) MemberGated(consortium_) {}

    /// @notice Append a batch of accesses; emits one {AccessLogged} per entry.
    /// @param accesses The accesses, in the order they happened.
    function logAccesses(Access[] calldata accesses) external onlyRole(Roles.CUSTODIAN) {
        uint256 n = accesses.length;
        if (n == 0) revert EmptyBatch();
        uint256 sequence = accessCount;
        for (uint256 i = 0; i < n; ++i) {
            Access calldata a = accesses[i];
            if (
                a.patient == address(0) || a.accessor == address(0) || a.recordId == bytes32(0)
                    || a.authKind == AuthKind.None
            ) revert InvalidAccess(i);
            emit AccessLogged(
                a.patient,
                a.accessor,
                a.recordId,
                msg.sender,
                a.purpose,
                a.authKind,
                a.authId,
                a.staffRef,
                ++sequence
            );
        }
        accessCount = sequence;
    }
}
