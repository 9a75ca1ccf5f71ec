// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";
import {MemberGated} from "./utils/MemberGated.sol";
import {Roles} from "./utils/Roles.sol";

/// @title RecordRegistry
/// @notice Anchors commitments to off-chain encrypted health records, in batches, so any member or auditor can
/// later prove a record existed unchanged since a block. Also anchors Merkle roots of high-volume data
/// (wearable readings, self-test reports) and records amendments and erasures (crypto-shredding).
/// @dev The commitment is SHA-256 over the record's ciphertext (AES-256-GCM with a fresh random key per
/// record), never over plaintext: a bare plaintext hash of a low-entropy record (a test result, a
/// diagnosis code) could be confirmed by guessing. The chain stores only which custodian holds a record id,
/// its class and status; commitments and patients live in events, which are the ledger of record.
contract RecordRegistry is MemberGated {
    /// @notice Life-cycle of an anchored record.
    enum Status {
        None,
        Active,
        Superseded,
        Erased
    }

    /// @notice One record to anchor.
    /// @param recordId Globally unique id chosen by the custodian (see docs/contracts.md for its derivation).
    /// @param patient The patient's ledger address.
    /// @param commitment sha256 of the record's ciphertext (also the digest inside its raw CIDv1).
    /// @param recordClass Record class code (1..255; see medledger.vocabulary.RecordClass).
    /// @param clinicalTime Unix time of the clinical event the record describes (0 if unknown).
    struct RecordAnchor {
        bytes32 recordId;
        address patient;
        bytes32 commitment;
        uint8 recordClass;
        uint64 clinicalTime;
    }

    /// @notice A new version of an existing record.
    struct Amendment {
        bytes32 previousId;
        RecordAnchor record;
    }

    /// @notice On-chain state per record id: one storage slot.
    struct RecordState {
        address custodian;
        uint64 anchoredBlock;
        Status status;
        uint8 recordClass;
    }

    /// @notice An anchored Merkle root.
    struct Digest {
        address custodian;
        uint64 anchoredBlock;
        uint32 count;
        bytes32 kind;
    }

    mapping(bytes32 recordId => RecordState) private _records;
    mapping(bytes32 root => Digest) private _digests;
    /// @notice Number of digests ever anchored; digest ids run from 1 to this.
    uint256 public digestCount;

    /// @notice A record was anchored by `custodian`.
    event RecordAnchored(
        address indexed patient,
        address indexed custodian,
        bytes32 indexed recordId,
        bytes32 commitment,
        uint8 recordClass,
        uint64 clinicalTime
    );
    /// @notice `newId` supersedes `previousId` (both anchored by `custodian`).
    event RecordAmended(bytes32 indexed previousId, bytes32 indexed newId, address indexed custodian);
    /// @notice The custodian destroyed the record's key and ciphertext; `requestHash` identifies the
    /// patient's signed erasure request (or a legal basis document) kept off chain.
    event RecordErased(bytes32 indexed recordId, address indexed custodian, bytes32 requestHash);
    /// @notice A Merkle root over `count` leaves of `kind` was anchored.
    event DigestAnchored(
        uint256 indexed digestId, address indexed custodian, bytes32 indexed kind, bytes32 root, uint32 count
    );

    /// @notice The batch is empty.
    error EmptyBatch();
    /// @notice The record id was already anchored (by anyone, in any status).
    error DuplicateRecord(bytes32 recordId);
    /// @notice A record field is zero or out of range.
    error InvalidRecord(bytes32 recordId);
    /// @notice No record has this id.
    error UnknownRecord(bytes32 recordId);
    /// @notice The caller is not the custodian of the record.
    error NotCustodian(bytes32 recordId, address caller);
    /// @notice The record is superseded or erased and cannot change again.
    error RecordNotActive(bytes32 recordId, Status status);
    /// @notice The root was already anchored.
    error DuplicateDigest(bytes32 root);
    /// @notice A digest root or count is zero.
    error InvalidDigest();

    /// @param consortium_ The membership contract.
    constructor(IConsortium consortium_) MemberGated(consortium_) {}

    /// @notice Anchor a batch of records; emits one {RecordAnchored} per record.
    /// @dev Reverts the whole batch on any invalid or duplicate record, so a batch is anchored all or nothing.
    /// @param records The records to anchor.
    function anchorRecords(RecordAnchor[] calldata records) external onlyRole(Roles.CUSTODIAN) {
        uint256 n = records.length;
        if (n == 0) revert EmptyBatch();
        uint64 blockNumber = uint64(block.number);
        for (uint256 i = 0; i < n; ++i) {
            _anchor(records[i], blockNumber);
        }
    }

    /// @notice Anchor new versions of records the caller holds; the previous versions become Superseded.
    /// @param amendments Pairs of (previous id, new record).
    function amendRecords(Amendment[] calldata amendments) external onlyRole(Roles.CUSTODIAN) {
        uint256 n = amendments.length;
        if (n == 0) revert EmptyBatch();
        uint64 blockNumber = uint64(block.number);
        for (uint256 i = 0; i < n; ++i) {
            bytes32 previousId = amendments[i].previousId;
            _requireActiveCustody(previousId);
            _records[previousId].status = Status.Superseded;
            _anchor(amendments[i].record, blockNumber);
            emit RecordAmended(previousId, amendments[i].record.recordId, msg.sender);
        }
    }

    /// @notice Mark records as erased after their keys and ciphertexts were destroyed off chain.
    /// @param recordIds Records to mark; each must be active and held by the caller.
    /// @param requestHash Hash of the patient's signed erasure request (or legal basis) kept off chain.
    function eraseRecords(bytes32[] calldata recordIds, bytes32 requestHash) external onlyRole(Roles.CUSTODIAN) {
        uint256 n = recordIds.length;
        if (n == 0) revert EmptyBatch();
        for (uint256 i = 0; i < n; ++i) {
            bytes32 id = recordIds[i];
            _requireActiveCustody(id);
            _records[id].status = Status.Erased;
            emit RecordErased(id, msg.sender, requestHash);
        }
    }

    /// @notice Anchor a Merkle root (OpenZeppelin StandardMerkleTree layout) over high-volume data.
    /// @param root The tree's root.
    /// @param count Number of leaves.
    /// @param kind Application-defined kind of data (e.g. keccak256("wearable.vitals.v1")).
    /// @return digestId Sequential id of this digest.
    function anchorDigest(bytes32 root, uint32 count, bytes32 kind)
        external
        onlyRole(Roles.CUSTODIAN | Roles.MANUFACTURER)
        returns (uint256 digestId)
    {
        if (root == bytes32(0) || count == 0) revert InvalidDigest();
        if (_digests[root].custodian != address(0)) revert DuplicateDigest(root);
        _digests[root] = Digest({custodian: msg.sender, anchoredBlock: uint64(block.number), count: count, kind: kind});
        digestId = ++digestCount;
        emit DigestAnchored(digestId, msg.sender, kind, root, count);
    }

    /// @notice Whether `leaf` is in an anchored tree with root `root`, by OpenZeppelin MerkleProof rules.
    /// @param root An anchored root.
    /// @param proof Sibling hashes from leaf to root.
    /// @param leaf The leaf hash (keccak256(bytes.concat(keccak256(abi.encode(values))))).
    function verifyDigestLeaf(bytes32 root, bytes32[] calldata proof, bytes32 leaf) external view returns (bool) {
        return _digests[root].custodian != address(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice State of a record id (status None if never anchored).
    /// @param recordId The record id.
    function getRecord(bytes32 recordId) external view returns (RecordState memory) {
        return _records[recordId];
    }

    /// @notice The anchored digest with this root (custodian zero if none).
    /// @param root The Merkle root.
    function getDigest(bytes32 root) external view returns (Digest memory) {
        return _digests[root];
    }

    function _anchor(RecordAnchor calldata r, uint64 blockNumber) private {
        if (r.recordId == bytes32(0) || r.patient == address(0) || r.commitment == bytes32(0) || r.recordClass == 0)
        {
            revert InvalidRecord(r.recordId);
        }
        if (_records[r.recordId].status != Status.None) revert DuplicateRecord(r.recordId);
        _records[r.recordId] = RecordState({
            custodian: msg.sender,
            anchoredBlock: blockNumber,
            status: Status.Active,
            recordClass: r.recordClass
        });
        emit RecordAnchored(r.patient, msg.sender, r.recordId, r.commitment, r.recordClass, r.clinicalTime);
    }

    function _requireActiveCustody(bytes32 recordId) private view {
        RecordState storage s = _records[recordId];
        if (s.status == Status.None) revert UnknownRecord(recordId);
        if (s.custodian != msg.sender) revert NotCustodian(recordId, msg.sender);
        if (s.status != Status.Active) revert RecordNotActive(recordId, s.status);
    }
}
