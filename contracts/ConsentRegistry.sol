// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {MemberGated} from "./utils/MemberGated.sol";
import {PatientSignatures} from "./utils/PatientSignatures.sol";
import {Roles} from "./utils/Roles.sol";

/// @title ConsentRegistry
/// @notice Patients' consent grants: who (an institution or a person) may read which classes of the patient's
/// records, for what purpose, in which time window. Patients grant and revoke directly or, needing no gas, by
/// an EIP-712 signature relayed by a RELAYER member. EMERGENCY members can open a short, loudly logged
/// break-glass window when a patient cannot consent.
/// @dev One current grant per (patient, grantee, purpose): a new grant replaces (and ends) the previous one, so
/// {isAuthorized} is O(1) and a patient widens or narrows access by granting again.
contract ConsentRegistry is MemberGated, PatientSignatures {
    /// @notice A consent grant. `classes` is a bitmask: bit `c` set means record class `c` is covered.
    struct Grant {
        address patient;
        address grantee;
        uint256 classes;
        uint8 purpose;
        uint64 validFrom;
        uint64 validUntil;
        bool revoked;
    }

    /// @notice What a patient grants.
    struct GrantTerms {
        address grantee;
        uint256 classes;
        uint8 purpose;
        uint64 validFrom;
        uint64 validUntil;
    }

    /// @notice An emergency access window.
    struct BreakGlass {
        address patient;
        address accessor;
        uint64 openedAt;
        uint64 expiresAt;
        bytes32 reasonHash;
    }

    /// @notice Highest purpose code (1 TREATMENT, 2 REFERRAL, 3 RESEARCH, 4 EMERGENCY, 5 FAMILY, 6 PUBLIC_HEALTH,
    /// 7 PAYMENT).
    uint8 public constant MAX_PURPOSE = 7;
    /// @notice Longest break-glass window.
    uint64 public constant MAX_BREAK_GLASS_DURATION = 24 hours;

    bytes32 private constant _GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,uint256 classes,uint8 purpose,uint64 validFrom,uint64 validUntil,uint256 nonce,uint256 deadline)"
    );
    bytes32 private constant _REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,uint256 grantId,uint256 nonce,uint256 deadline)");

    /// @notice Number of grants ever made; ids run from 1 to this.
    uint256 public grantCount;
    /// @notice Number of break-glass windows ever opened; ids run from 1 to this.
    uint256 public breakGlassCount;

    mapping(uint256 grantId => Grant) private _grants;
    mapping(address patient => mapping(address grantee => mapping(uint8 purpose => uint256 grantId))) private
        _currentGrant;
    mapping(uint256 id => BreakGlass) private _breakGlass;
    mapping(address patient => mapping(address accessor => uint256 id)) private _latestBreakGlass;

    /// @notice A patient granted consent; `replacesGrantId` (0 if none) ended at the same time.
    event ConsentGranted(
        uint256 indexed grantId,
        address indexed patient,
        address indexed grantee,
        uint256 classes,
        uint8 purpose,
        uint64 validFrom,
        uint64 validUntil,
        uint256 replacesGrantId,
        address relayer
    );
    /// @notice A grant ended: revoked by the patient, or replaced by a newer grant (`replaced` true).
    event ConsentRevoked(
        uint256 indexed grantId, address indexed patient, address indexed grantee, bool replaced, address relayer
    );
    /// @notice An EMERGENCY member opened a break-glass window on a patient's records.
    event BreakGlassOpened(
        uint256 indexed breakGlassId,
        address indexed patient,
        address indexed accessor,
        bytes32 reasonHash,
        uint64 expiresAt
    );
    /// @notice A break-glass window was closed before it expired.
    event BreakGlassClosed(uint256 indexed breakGlassId, address indexed patient, address indexed accessor);

    /// @notice A grant field is invalid (zero grantee, grantee is the patient, no classes, bad purpose, bad window).
    error InvalidGrant();
    /// @notice No grant has this id.
    error UnknownGrant(uint256 grantId);
    /// @notice Only the grant's patient may revoke it.
    error NotGrantPatient(uint256 grantId, address caller);
    /// @notice The grant was already revoked or replaced.
    error GrantAlreadyRevoked(uint256 grantId);
    /// @notice Break-glass duration is zero or above {MAX_BREAK_GLASS_DURATION}, or the reason is empty.
    error InvalidBreakGlass();
    /// @notice The accessor already has an open window on this patient.
    error BreakGlassAlreadyOpen(uint256 breakGlassId);
    /// @notice No open break-glass window with this id belongs to the caller.
    error BreakGlassNotOpen(uint256 breakGlassId);

    /// @param consortium_ The membership contract.
    constructor(IConsortium consortium_)
        MemberGated(consortium_)
        PatientSignatures("MedLedger ConsentRegistry", "1")
    {}

    // ------------------------------------------------------------------ grants

    /// @notice Grant consent as the patient (msg.sender).
    /// @param terms Grantee, class mask, purpose and window (validFrom 0 means now).
    /// @return grantId The new grant's id.
    function grant(GrantTerms calldata terms) external returns (uint256 grantId) {
        return _grant(msg.sender, terms, address(0));
    }

    /// @notice Grant consent on a patient's behalf from their EIP-712 `Grant` signature; the relayer pays gas.
    /// @param patient The patient (the signer).
    /// @param terms The signed terms.
    /// @param nonce The patient's current nonce in this contract ({nonces}).
    /// @param deadline Unix time after which the signature is void.
    /// @param signature The patient's signature (65-byte ECDSA, or ERC-1271 for contract wallets).
    /// @return grantId The new grant's id.
    function grantBySig(
        address patient,
        GrantTerms calldata terms,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external onlyRole(Roles.RELAYER) returns (uint256 grantId) {
        bytes32 structHash = keccak256(
            abi.encode(
                _GRANT_TYPEHASH,
                patient,
                terms.grantee,
                terms.classes,
                terms.purpose,
                terms.validFrom,
                terms.validUntil,
                nonce,
                deadline
            )
        );
        _consumePatientSignature(patient, structHash, nonce, deadline, signature);
        return _grant(patient, terms, msg.sender);
    }

    /// @notice Revoke a grant as its patient.
    /// @param grantId The grant to revoke.
    function revoke(uint256 grantId) external {
        _revoke(msg.sender, grantId, address(0));
    }

    /// @notice Revoke a grant on the patient's behalf from their EIP-712 `Revoke` signature.
    /// @param patient The patient (the signer).
    /// @param grantId The grant to revoke.
    /// @param nonce The patient's current nonce in this contract.
    /// @param deadline Unix time after which the signature is void.
    /// @param signature The patient's signature.
    function revokeBySig(address patient, uint256 grantId, uint256 nonce, uint256 deadline, bytes calldata signature)
        external
        onlyRole(Roles.RELAYER)
    {
        bytes32 structHash = keccak256(abi.encode(_REVOKE_TYPEHASH, patient, grantId, nonce, deadline));
        _consumePatientSignature(patient, structHash, nonce, deadline, signature);
        _revoke(patient, grantId, msg.sender);
    }

    // ------------------------------------------------------------------ break-glass

    /// @notice Open an emergency access window on `patient`'s records for the caller.
    /// @param patient The patient.
    /// @param reasonHash Hash of the documented reason kept by the accessor (must be non-zero).
    /// @param duration Seconds the window stays open, 1..{MAX_BREAK_GLASS_DURATION}.
    /// @return breakGlassId The window's id.
    function openBreakGlass(address patient, bytes32 reasonHash, uint64 duration)
        external
        onlyRole(Roles.EMERGENCY)
        returns (uint256 breakGlassId)
    {
        if (patient == address(0) || reasonHash == bytes32(0) || duration == 0 || duration > MAX_BREAK_GLASS_DURATION)
        {
            revert InvalidBreakGlass();
        }
        uint256 latest = _latestBreakGlass[patient][msg.sender];
        if (latest != 0 && _breakGlass[latest].expiresAt >= block.timestamp) revert BreakGlassAlreadyOpen(latest);
        breakGlassId = ++breakGlassCount;
        uint64 expiresAt = uint64(block.timestamp) + duration;
        _breakGlass[breakGlassId] = BreakGlass({
            patient: patient,
            accessor: msg.sender,
            openedAt: uint64(block.timestamp),
            expiresAt: expiresAt,
            reasonHash: reasonHash
        });
        _latestBreakGlass[patient][msg.sender] = breakGlassId;
        emit BreakGlassOpened(breakGlassId, patient, msg.sender, reasonHash, expiresAt);
    }

    /// @notice Close the caller's open break-glass window early.
    /// @param breakGlassId The window to close.
    function closeBreakGlass(uint256 breakGlassId) external {
        BreakGlass storage w = _breakGlass[breakGlassId];
        if (w.accessor != msg.sender || w.expiresAt < block.timestamp) revert BreakGlassNotOpen(breakGlassId);
        // An expiry one second in the past makes every "open at" check fail from this block on.
        w.expiresAt = uint64(block.timestamp) - 1;
        emit BreakGlassClosed(breakGlassId, w.patient, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether `grantee` may now read `patient`'s records of `recordClass` for `purpose`.
    /// @param patient The patient.
    /// @param grantee The reader (institution or person).
    /// @param recordClass Record class code (1..255).
    /// @param purpose Purpose code (1..{MAX_PURPOSE}).
    /// @return allowed True if a current, unrevoked, in-window grant covers the class.
    /// @return grantId The grant that allows it (0 if none).
    function isAuthorized(address patient, address grantee, uint8 recordClass, uint8 purpose)
        external
        view
        returns (bool allowed, uint256 grantId)
    {
        grantId = _currentGrant[patient][grantee][purpose];
        if (grantId == 0) return (false, 0);
        Grant storage g = _grants[grantId];
        allowed = !g.revoked && g.validFrom <= block.timestamp && block.timestamp <= g.validUntil
            && (g.classes >> recordClass) & 1 == 1;
        if (!allowed) grantId = 0;
    }

    /// @notice The caller-visible state of a grant.
    /// @param grantId The grant.
    function getGrant(uint256 grantId) external view returns (Grant memory) {
        if (_grants[grantId].patient == address(0)) revert UnknownGrant(grantId);
        return _grants[grantId];
    }

    /// @notice The current grant id for (patient, grantee, purpose), 0 if none was ever made.
    /// @param patient The patient.
    /// @param grantee The grantee.
    /// @param purpose The purpose code.
    function currentGrant(address patient, address grantee, uint8 purpose) external view returns (uint256) {
        return _currentGrant[patient][grantee][purpose];
    }

    /// @notice The open break-glass window of `accessor` on `patient`, if any.
    /// @param patient The patient.
    /// @param accessor The EMERGENCY member.
    /// @return breakGlassId The open window's id, 0 if none is open now.
    /// @return expiresAt When it closes (0 if none).
    function activeBreakGlass(address patient, address accessor)
        external
        view
        returns (uint256 breakGlassId, uint64 expiresAt)
    {
        uint256 id = _latestBreakGlass[patient][accessor];
        if (id != 0 && _breakGlass[id].expiresAt >= block.timestamp) return (id, _breakGlass[id].expiresAt);
        return (0, 0);
    }

    /// @notice A break-glass window's record.
    /// @param breakGlassId The window.
    function getBreakGlass(uint256 breakGlassId) external view returns (BreakGlass memory) {
        return _breakGlass[breakGlassId];
    }

    // ------------------------------------------------------------------ internals

    function _grant(address patient, GrantTerms calldata t, address relayer) private returns (uint256 grantId) {
        uint64 validFrom = t.validFrom == 0 ? uint64(block.timestamp) : t.validFrom;
        if (
            t.grantee == address(0) || t.grantee == patient || t.classes == 0 || t.purpose == 0
                || t.purpose > MAX_PURPOSE || t.validUntil <= validFrom || t.validUntil <= block.timestamp
        ) revert InvalidGrant();

        uint256 previous = _currentGrant[patient][t.grantee][t.purpose];
        if (previous != 0 && !_grants[previous].revoked) {
            _grants[previous].revoked = true;
            emit ConsentRevoked(previous, patient, t.grantee, true, relayer);
        } else {
            previous = 0;
        }
        grantId = ++grantCount;
        _grants[grantId] = Grant({
            patient: patient,
            grantee: t.grantee,
            classes: t.classes,
            purpose: t.purpose,
            validFrom: validFrom,
            validUntil: t.validUntil,
            revoked: false
        });
        _currentGrant[patient][t.grantee][t.purpose] = grantId;
        emit ConsentGranted(
            grantId, patient, t.grantee, t.classes, t.purpose, validFrom, t.validUntil, previous, relayer
        );
    }

    function _revoke(address patient, uint256 grantId, address relayer) private {
        Grant storage g = _grants[grantId];
        if (g.patient == address(0)) revert UnknownGrant(grantId);
        if (g.patient != patient) revert NotGrantPatient(grantId, patient);
        if (g.revoked) revert GrantAlreadyRevoked(grantId);
        g.revoked = true;
        emit ConsentRevoked(grantId, patient, g.grantee, false, relayer);
    }
}
