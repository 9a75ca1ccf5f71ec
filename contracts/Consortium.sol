// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";
import {PatientSignatures} from "./utils/PatientSignatures.sol";
import {Roles} from "./utils/Roles.sol";

/// @title Consortium
/// @notice Membership of the regional health-record network: institutions, their roles, API endpoints,
/// encryption keys and validator/peer nodes, changed only by k-of-n votes of the members. Patients register
/// their encryption public key here (directly or through a relayer with an EIP-712 signature).
/// @dev Also answers the Besu permissioning interfaces (`transactionAllowed`, `connectionAllowed`) so this
/// contract is the single source of truth for who may transact and which nodes may connect; Besu's local
/// allowlist files are rendered from it (see scripts/besu_permissions.py).
contract Consortium is IConsortium, PatientSignatures {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    /// @notice Kinds of governance proposal.
    enum ProposalKind {
        None,
        Admit,
        Remove,
        SetRoles,
        SetThreshold
    }

    /// @notice A member institution.
    struct Member {
        uint32 roles;
        bool active;
        uint64 admittedAt;
        string name;
        string endpoint;
        bytes encryptionKey;
    }

    /// @notice Arguments of a founding member at deployment.
    struct Founder {
        address account;
        uint32 roles;
        string name;
        string endpoint;
        bytes encryptionKey;
    }

    /// @notice A governance proposal. `roles`/`name`/`endpoint`/`encryptionKey` are used by Admit and SetRoles,
    /// `newThreshold` by SetThreshold.
    struct Proposal {
        ProposalKind kind;
        bool executed;
        uint64 expiresAt;
        address proposer;
        address subject;
        uint32 roles;
        uint256 newThreshold;
        string name;
        string endpoint;
        bytes encryptionKey;
    }

    /// @notice A peer node of a member, as Besu identifies it.
    struct Node {
        address owner;
        uint16 port;
        string enodeId;
        string host;
    }

    /// @notice Length of an X25519 public key, the encryption key format of members and patients.
    uint256 public constant ENCRYPTION_KEY_LENGTH = 32;
    /// @notice Length of a Besu enode id: the node's uncompressed secp256k1 public key, hex, no prefix.
    uint256 public constant ENODE_ID_LENGTH = 128;
    /// @notice Most nodes one member may register.
    uint256 public constant MAX_NODES_PER_MEMBER = 8;
    /// @notice Longest name or endpoint accepted, in bytes.
    uint256 public constant MAX_TEXT_LENGTH = 256;

    bytes32 private constant _REGISTER_PATIENT_KEY_TYPEHASH =
        keccak256("RegisterPatientKey(address patient,bytes encryptionKey,uint256 nonce,uint256 deadline)");

    /// @notice Approvals (from current members) needed to execute a proposal.
    uint256 public threshold;
    /// @notice Seconds a proposal stays open for approval and execution.
    uint64 public immutable votingPeriod;
    /// @notice Number of proposals ever created; ids run from 1 to this.
    uint256 public proposalCount;

    mapping(address account => Member) private _members;
    EnumerableSet.AddressSet private _activeMembers;
    mapping(uint256 id => Proposal) private _proposals;
    mapping(uint256 id => EnumerableSet.AddressSet) private _approvals;
    mapping(bytes32 enodeKey => Node) private _nodes;
    EnumerableSet.Bytes32Set private _nodeKeys;
    mapping(address account => uint256) private _nodeCount;
    mapping(address patient => bytes) private _patientKeys;

    /// @notice A member was admitted (at deployment or by vote).
    event MemberAdmitted(address indexed account, uint32 roles, string name, string endpoint, bytes encryptionKey);
    /// @notice A member was removed by vote.
    event MemberRemoved(address indexed account);
    /// @notice A member's roles were changed by vote.
    event MemberRolesChanged(address indexed account, uint32 previousRoles, uint32 roles);
    /// @notice A member updated its own endpoint and encryption key.
    event MemberProfileUpdated(address indexed account, string endpoint, bytes encryptionKey);
    /// @notice The approval threshold changed.
    event ThresholdChanged(uint256 previousThreshold, uint256 threshold);
    /// @notice A proposal was created; the proposer's approval is counted at once.
    event ProposalCreated(
        uint256 indexed proposalId, ProposalKind indexed kind, address indexed subject, address proposer, uint64 expiresAt
    );
    /// @notice A member approved a proposal.
    event ProposalApproved(uint256 indexed proposalId, address indexed approver, uint256 approvals);
    /// @notice A proposal reached its threshold and was carried out.
    event ProposalExecuted(uint256 indexed proposalId, address indexed executor);
    /// @notice A member registered a peer node.
    event NodeAdded(address indexed owner, string enodeId, string host, uint16 port);
    /// @notice A member removed one of its peer nodes.
    event NodeRemoved(address indexed owner, string enodeId);
    /// @notice A patient registered or rotated their encryption public key.
    event PatientKeyRegistered(address indexed patient, bytes encryptionKey, address indexed relayer);

    /// @notice The caller is not an active member.
    error NotMember(address account);
    /// @notice The account is already an active member.
    error AlreadyMember(address account);
    /// @notice The caller lacks every role in `requiredRoles`.
    error MissingRole(address account, uint32 requiredRoles);
    /// @notice A role mask is zero or has undefined bits.
    error InvalidRoles(uint32 roles);
    /// @notice The zero address was given where an account is required.
    error ZeroAddress();
    /// @notice A name or endpoint is empty or longer than {MAX_TEXT_LENGTH}.
    error InvalidText();
    /// @notice An encryption key is not {ENCRYPTION_KEY_LENGTH} bytes.
    error InvalidEncryptionKey(uint256 length);
    /// @notice A threshold is zero or larger than the member count it must be reachable with.
    error InvalidThreshold(uint256 threshold, uint256 memberCount);
    /// @notice The voting period is zero.
    error InvalidVotingPeriod();
    /// @notice No proposal has this id.
    error UnknownProposal(uint256 proposalId);
    /// @notice The proposal's voting period is over.
    error ProposalExpired(uint256 proposalId, uint64 expiredAt);
    /// @notice The proposal was already executed.
    error ProposalAlreadyExecuted(uint256 proposalId);
    /// @notice The caller already approved this proposal.
    error AlreadyApproved(uint256 proposalId, address approver);
    /// @notice Fewer current members approved than the threshold requires.
    error ThresholdNotReached(uint256 proposalId, uint256 approvals, uint256 threshold);
    /// @notice Removing this member would leave fewer members than the threshold: governance would lock.
    error ThresholdUnreachable(uint256 memberCountAfter, uint256 threshold);
    /// @notice An enode id is not 128 lowercase hex characters.
    error InvalidEnodeId();
    /// @notice The node is already registered.
    error NodeAlreadyRegistered(string enodeId);
    /// @notice The node is not registered by the caller.
    error UnknownNode(string enodeId);
    /// @notice The member already has {MAX_NODES_PER_MEMBER} nodes.
    error TooManyNodes(address owner);

    /// @param founders The founding members; at least `threshold_` of them.
    /// @param threshold_ Approvals needed to execute a proposal.
    /// @param votingPeriod_ Seconds a proposal stays open.
    constructor(Founder[] memory founders, uint256 threshold_, uint64 votingPeriod_)
        PatientSignatures("MedLedger Consortium", "1")
    {
        if (votingPeriod_ == 0) revert InvalidVotingPeriod();
        for (uint256 i = 0; i < founders.length; ++i) {
            Founder memory f = founders[i];
            if (_members[f.account].active) revert AlreadyMember(f.account);
            _admit(f.account, f.roles, f.name, f.endpoint, f.encryptionKey);
        }
        if (threshold_ == 0 || threshold_ > founders.length) revert InvalidThreshold(threshold_, founders.length);
        threshold = threshold_;
        votingPeriod = votingPeriod_;
        emit ThresholdChanged(0, threshold_);
    }

    modifier onlyMember() {
        if (!_members[msg.sender].active) revert NotMember(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ governance

    /// @notice Propose admitting `account` as a member.
    /// @param account The institution's ledger address.
    /// @param roles Role bitmask (see {Roles}).
    /// @param name Display name, 1..256 bytes.
    /// @param endpoint Base URL of the institution node's API, 1..256 bytes.
    /// @param encryptionKey The institution's X25519 public key (32 bytes).
    /// @return proposalId The new proposal's id.
    function proposeAdmission(
        address account,
        uint32 roles,
        string calldata name,
        string calldata endpoint,
        bytes calldata encryptionKey
    ) external onlyMember returns (uint256 proposalId) {
        _checkProfile(account, roles, name, endpoint, encryptionKey);
        if (_members[account].active) revert AlreadyMember(account);
        proposalId = _newProposal(ProposalKind.Admit, account);
        Proposal storage p = _proposals[proposalId];
        p.roles = roles;
        p.name = name;
        p.endpoint = endpoint;
        p.encryptionKey = encryptionKey;
    }

    /// @notice Propose removing member `account`.
    /// @param account The member to remove.
    /// @return proposalId The new proposal's id.
    function proposeRemoval(address account) external onlyMember returns (uint256 proposalId) {
        if (!_members[account].active) revert NotMember(account);
        proposalId = _newProposal(ProposalKind.Remove, account);
    }

    /// @notice Propose replacing the roles of member `account`.
    /// @param account The member whose roles change.
    /// @param roles The new role bitmask.
    /// @return proposalId The new proposal's id.
    function proposeRoles(address account, uint32 roles) external onlyMember returns (uint256 proposalId) {
        if (!_members[account].active) revert NotMember(account);
        if (roles == 0 || roles & ~Roles.ALL != 0) revert InvalidRoles(roles);
        proposalId = _newProposal(ProposalKind.SetRoles, account);
        _proposals[proposalId].roles = roles;
    }

    /// @notice Propose a new approval threshold.
    /// @param newThreshold Approvals required, 1..memberCount.
    /// @return proposalId The new proposal's id.
    function proposeThreshold(uint256 newThreshold) external onlyMember returns (uint256 proposalId) {
        uint256 count = _activeMembers.length();
        if (newThreshold == 0 || newThreshold > count) revert InvalidThreshold(newThreshold, count);
        proposalId = _newProposal(ProposalKind.SetThreshold, address(0));
        _proposals[proposalId].newThreshold = newThreshold;
    }

    /// @notice Approve an open proposal.
    /// @param proposalId The proposal to approve.
    function approve(uint256 proposalId) external onlyMember {
        _openProposal(proposalId);
        if (!_approvals[proposalId].add(msg.sender)) revert AlreadyApproved(proposalId, msg.sender);
        emit ProposalApproved(proposalId, msg.sender, approvalCount(proposalId));
    }

    /// @notice Execute a proposal approved by at least `threshold` current members.
    /// @dev Approvals are counted at execution: a voter removed meanwhile no longer counts.
    /// @param proposalId The proposal to execute.
    function execute(uint256 proposalId) external onlyMember {
        Proposal storage p = _openProposal(proposalId);
        uint256 approvals = approvalCount(proposalId);
        if (approvals < threshold) revert ThresholdNotReached(proposalId, approvals, threshold);
        p.executed = true;

        if (p.kind == ProposalKind.Admit) {
            if (_members[p.subject].active) revert AlreadyMember(p.subject);
            _admit(p.subject, p.roles, p.name, p.endpoint, p.encryptionKey);
        } else if (p.kind == ProposalKind.Remove) {
            if (!_members[p.subject].active) revert NotMember(p.subject);
            uint256 remaining = _activeMembers.length() - 1;
            if (remaining < threshold) revert ThresholdUnreachable(remaining, threshold);
            _members[p.subject].active = false;
            _activeMembers.remove(p.subject);
            emit MemberRemoved(p.subject);
        } else if (p.kind == ProposalKind.SetRoles) {
            Member storage m = _members[p.subject];
            if (!m.active) revert NotMember(p.subject);
            emit MemberRolesChanged(p.subject, m.roles, p.roles);
            m.roles = p.roles;
        } else {
            uint256 count = _activeMembers.length();
            if (p.newThreshold > count) revert InvalidThreshold(p.newThreshold, count);
            emit ThresholdChanged(threshold, p.newThreshold);
            threshold = p.newThreshold;
        }
        emit ProposalExecuted(proposalId, msg.sender);
    }

    /// @notice Approvals of `proposalId` by accounts that are members now.
    /// @param proposalId The proposal.
    /// @return count Number of current members among its approvers.
    function approvalCount(uint256 proposalId) public view returns (uint256 count) {
        EnumerableSet.AddressSet storage set = _approvals[proposalId];
        uint256 n = set.length();
        for (uint256 i = 0; i < n; ++i) {
            if (_members[set.at(i)].active) ++count;
        }
    }

    /// @notice Whether `account` approved `proposalId`.
    /// @param proposalId The proposal.
    /// @param account The voter.
    function hasApproved(uint256 proposalId, address account) external view returns (bool) {
        return _approvals[proposalId].contains(account);
    }

    /// @notice A proposal's full content.
    /// @param proposalId The proposal.
    function getProposal(uint256 proposalId) external view returns (Proposal memory) {
        if (_proposals[proposalId].kind == ProposalKind.None) revert UnknownProposal(proposalId);
        return _proposals[proposalId];
    }

    // ------------------------------------------------------------------ member self-service

    /// @notice Update the caller's API endpoint and encryption key (key rotation needs no vote).
    /// @param endpoint New base URL of the member's node API.
    /// @param encryptionKey New X25519 public key (32 bytes).
    function updateProfile(string calldata endpoint, bytes calldata encryptionKey) external onlyMember {
        if (bytes(endpoint).length == 0 || bytes(endpoint).length > MAX_TEXT_LENGTH) revert InvalidText();
        if (encryptionKey.length != ENCRYPTION_KEY_LENGTH) revert InvalidEncryptionKey(encryptionKey.length);
        Member storage m = _members[msg.sender];
        m.endpoint = endpoint;
        m.encryptionKey = encryptionKey;
        emit MemberProfileUpdated(msg.sender, endpoint, encryptionKey);
    }

    /// @notice Register one of the caller's blockchain nodes so peers may connect to it.
    /// @param enodeId The node's public key: 128 lowercase hex characters, no 0x.
    /// @param host The node's IP address as Besu reports it.
    /// @param port The node's P2P port.
    function addNode(string calldata enodeId, string calldata host, uint16 port) external onlyMember {
        _checkEnodeId(enodeId);
        if (bytes(host).length == 0 || bytes(host).length > MAX_TEXT_LENGTH) revert InvalidText();
        bytes32 key = keccak256(bytes(enodeId));
        if (_nodeKeys.contains(key)) revert NodeAlreadyRegistered(enodeId);
        if (_nodeCount[msg.sender] >= MAX_NODES_PER_MEMBER) revert TooManyNodes(msg.sender);
        _nodeKeys.add(key);
        _nodes[key] = Node({owner: msg.sender, port: port, enodeId: enodeId, host: host});
        ++_nodeCount[msg.sender];
        emit NodeAdded(msg.sender, enodeId, host, port);
    }

    /// @notice Remove one of the caller's nodes.
    /// @param enodeId The node's public key as registered.
    function removeNode(string calldata enodeId) external onlyMember {
        bytes32 key = keccak256(bytes(enodeId));
        if (_nodes[key].owner != msg.sender) revert UnknownNode(enodeId);
        _nodeKeys.remove(key);
        delete _nodes[key];
        --_nodeCount[msg.sender];
        emit NodeRemoved(msg.sender, enodeId);
    }

    // ------------------------------------------------------------------ patients

    /// @notice Register or rotate the caller's (a patient's) X25519 encryption public key.
    /// @param encryptionKey 32-byte X25519 public key.
    function registerPatientKey(bytes calldata encryptionKey) external {
        _registerPatientKey(msg.sender, encryptionKey, address(0));
    }

    /// @notice Register a patient's key on their behalf from their EIP-712 signature; the relayer pays gas.
    /// @param patient The patient's address (the signer).
    /// @param encryptionKey 32-byte X25519 public key.
    /// @param nonce The patient's current nonce in this contract ({nonces}).
    /// @param deadline Unix time after which the signature is void.
    /// @param signature EIP-712 signature of RegisterPatientKey by `patient` (or ERC-1271 for contract wallets).
    function registerPatientKeyBySig(
        address patient,
        bytes calldata encryptionKey,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (!hasAnyRole(msg.sender, Roles.RELAYER)) revert MissingRole(msg.sender, Roles.RELAYER);
        bytes32 structHash = keccak256(
            abi.encode(_REGISTER_PATIENT_KEY_TYPEHASH, patient, keccak256(encryptionKey), nonce, deadline)
        );
        _consumePatientSignature(patient, structHash, nonce, deadline, signature);
        _registerPatientKey(patient, encryptionKey, msg.sender);
    }

    /// @notice A patient's registered encryption key, empty if none.
    /// @param patient The patient's address.
    function patientKey(address patient) external view returns (bytes memory) {
        return _patientKeys[patient];
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IConsortium
    function hasAnyRole(address account, uint32 roleMask) public view returns (bool) {
        Member storage m = _members[account];
        return m.active && (m.roles & roleMask) != 0;
    }

    /// @inheritdoc IConsortium
    function isMember(address account) external view returns (bool) {
        return _members[account].active;
    }

    /// @notice A member's record (also returned for removed members, with `active` false).
    /// @param account The member's address.
    function getMember(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice Addresses of all active members.
    function members() external view returns (address[] memory) {
        return _activeMembers.values();
    }

    /// @notice Number of active members.
    function memberCount() external view returns (uint256) {
        return _activeMembers.length();
    }

    /// @notice All registered nodes whose owners are active members.
    function nodes() external view returns (Node[] memory out) {
        uint256 n = _nodeKeys.length();
        Node[] memory all = new Node[](n);
        uint256 k;
        for (uint256 i = 0; i < n; ++i) {
            Node storage node = _nodes[_nodeKeys.at(i)];
            if (_members[node.owner].active) all[k++] = node;
        }
        out = new Node[](k);
        for (uint256 i = 0; i < k; ++i) out[i] = all[i];
    }

    /// @notice Besu account permissioning (Consensys permissioning-smart-contracts v2 signature): only active
    /// members may send transactions. Patients act through RELAYER members' signed relays.
    /// @param sender The transaction's sender.
    function transactionAllowed(address sender, address, uint256, uint256, uint256, bytes calldata)
        external
        view
        returns (bool)
    {
        return _members[sender].active;
    }

    /// @notice Besu node permissioning (v2 signature): a node may connect if an active member registered it
    /// with this exact enode id, host and port.
    /// @param enodeId The node's public key, 128 hex characters.
    /// @param enodeIp The node's IP address.
    /// @param enodePort The node's P2P port.
    function connectionAllowed(string calldata enodeId, string calldata enodeIp, uint16 enodePort)
        external
        view
        returns (bool)
    {
        Node storage node = _nodes[keccak256(bytes(_lower(enodeId)))];
        return node.owner != address(0) && _members[node.owner].active && node.port == enodePort
            && keccak256(bytes(node.host)) == keccak256(bytes(enodeIp));
    }

    // ------------------------------------------------------------------ internals

    function _admit(
        address account,
        uint32 roles,
        string memory name,
        string memory endpoint,
        bytes memory encryptionKey
    ) private {
        _checkProfile(account, roles, name, endpoint, encryptionKey);
        _members[account] = Member({
            roles: roles,
            active: true,
            admittedAt: uint64(block.timestamp),
            name: name,
            endpoint: endpoint,
            encryptionKey: encryptionKey
        });
        _activeMembers.add(account);
        emit MemberAdmitted(account, roles, name, endpoint, encryptionKey);
    }

    function _checkProfile(
        address account,
        uint32 roles,
        string memory name,
        string memory endpoint,
        bytes memory encryptionKey
    ) private pure {
        if (account == address(0)) revert ZeroAddress();
        if (roles == 0 || roles & ~Roles.ALL != 0) revert InvalidRoles(roles);
        uint256 nameLen = bytes(name).length;
        uint256 endpointLen = bytes(endpoint).length;
        if (nameLen == 0 || nameLen > MAX_TEXT_LENGTH || endpointLen == 0 || endpointLen > MAX_TEXT_LENGTH) {
            revert InvalidText();
        }
        if (encryptionKey.length != ENCRYPTION_KEY_LENGTH) revert InvalidEncryptionKey(encryptionKey.length);
    }

    function _newProposal(ProposalKind kind, address subject) private returns (uint256 proposalId) {
        proposalId = ++proposalCount;
        uint64 expiresAt = uint64(block.timestamp) + votingPeriod;
        Proposal storage p = _proposals[proposalId];
        p.kind = kind;
        p.expiresAt = expiresAt;
        p.proposer = msg.sender;
        p.subject = subject;
        emit ProposalCreated(proposalId, kind, subject, msg.sender, expiresAt);
        _approvals[proposalId].add(msg.sender);
        emit ProposalApproved(proposalId, msg.sender, 1);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        p = _proposals[proposalId];
        if (p.kind == ProposalKind.None) revert UnknownProposal(proposalId);
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        if (block.timestamp > p.expiresAt) revert ProposalExpired(proposalId, p.expiresAt);
    }

    function _registerPatientKey(address patient, bytes calldata encryptionKey, address relayer) private {
        if (encryptionKey.length != ENCRYPTION_KEY_LENGTH) revert InvalidEncryptionKey(encryptionKey.length);
        _patientKeys[patient] = encryptionKey;
        emit PatientKeyRegistered(patient, encryptionKey, relayer);
    }

    function _checkEnodeId(string calldata enodeId) private pure {
        bytes calldata b = bytes(enodeId);
        if (b.length != ENODE_ID_LENGTH) revert InvalidEnodeId();
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            if (!((c >= "0" && c <= "9") || (c >= "a" && c <= "f"))) revert InvalidEnodeId();
        }
    }

    /// @dev Besu may report enode ids in either case; registration stores lowercase.
    function _lower(string calldata s) private pure returns (string memory) {
        bytes memory b = bytes(s);
        for (uint256 i = 0; i < b.length; ++i) {
            if (b[i] >= "A" && b[i] <= "F") b[i] = bytes1(uint8(b[i]) + 32);
        }
        return string(b);
    }
}
