// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {MemberGated} from "./utils/MemberGated.sol";
import {Roles} from "./utils/Roles.sol";

/// @title AccessLog
/// @notice Append-only log of every release of a patient record: custodians journal each access before
/// releasing its key and write them here in batches; anyone can later check each access against the consent
/// state at the block the custodian decided it at (`decidedAt`), or at its own position when that is 0.
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
    /// @param decidedAt The block whose consent state authorized the access (the custodian decided on the state
    /// after it), so a revocation mined between the release and this log does not make an authorized access
    /// look unauthorized; 0 if unknown (the access is then judged at its own position). Must be one of the
    /// last {MAX_DECISION_AGE} blocks before this one: a custodian cannot cite a long-gone consent state.
    struct Access {
        address patient;
        address accessor;
        bytes32 recordId;
        uint8 purpose;
        AuthKind authKind;
        uint256 authId;
        bytes32 staffRef;
        uint64 decidedAt;
    }

    /// @notice How many blocks before the logging block a cited decision block may be.
    uint256 public constant MAX_DECISION_AGE = 256;

    /// @notice Number of accesses ever logged.
    uint256 public accessCount;

    /// @notice An access was logged by `custodian`; `sequence` counts accesses from 1 across the log;
    /// `decidedAt` is the block it was authorized at (0: unknown).
    event AccessLogged(
        address indexed patient,
        address indexed accessor,
        bytes32 indexed recordId,
        address custodian,
        uint8 purpose,
        AuthKind authKind,
        uint256 authId,
        bytes32 staffRef,
        uint256 sequence,
        uint64 decidedAt
    );

    /// @notice The batch is empty.
    error EmptyBatch();
    /// @notice An entry has a zero patient, accessor or record id, or no authorization kind.
    error InvalidAccess(uint256 index);
    /// @notice An entry cites a decision block that is not among the last {MAX_DECISION_AGE} blocks.
    error InvalidDecisionBlock(uint256 index, uint64 decidedAt);

    /// @param consortium_ The membership contract.
    constructor(IConsortium consortium_) MemberGated(consortium_) {}

    /// @notice Append a batch of accesses; emits one {AccessLogged} per entry. Reverts with
    /// {InvalidAccess} or {InvalidDecisionBlock} naming the first bad entry.
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
            if (a.decidedAt != 0 && (a.decidedAt >= block.number || block.number - a.decidedAt > MAX_DECISION_AGE)) {
                revert InvalidDecisionBlock(i, a.decidedAt);
            }
            emit AccessLogged(
                a.patient,
                a.accessor,
                a.recordId,
                msg.sender,
                a.purpose,
                a.authKind,
                a.authId,
                a.staffRef,
                ++sequence,
                a.decidedAt
            );
        }
        accessCount = sequence;
    }
}
