// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title PatientSignatures
/// @notice Base for contracts that act on a patient's behalf from the patient's EIP-712 signature, submitted
/// (and paid for) by a relayer: one domain per contract, one nonce sequence per patient per contract.
/// @dev An abstract contract rather than a library because the check needs the inheriting contract's EIP-712
/// domain and nonce storage; being inherited also puts {SignatureExpired}, {InvalidSignature} and
/// `InvalidAccountNonce` into each contract's ABI, which is where clients decode reverts by name. The
/// inheriting contract builds the request's struct hash (its typehash and fields) and checks the relayer's
/// role itself.
abstract contract PatientSignatures is EIP712, Nonces {
    /// @notice The signed request's deadline has passed.
    error SignatureExpired(uint256 deadline);
    /// @notice The signature was not made by the patient over this request on this chain and contract.
    error InvalidSignature(address patient);

    /// @param name The EIP-712 domain name wallets show and sign over.
    /// @param version The EIP-712 domain version.
    constructor(string memory name, string memory version) EIP712(name, version) {}

    /// @notice EIP-712 domain separator of this contract (for signers that want to check it).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev Accept a patient's signed request once, or revert. The order (deadline, signature, nonce) is what
    /// clients see: an expired replay reverts {SignatureExpired}, a forgery {InvalidSignature}, and only a valid
    /// signature with a used or future nonce `InvalidAccountNonce`.
    /// @param patient The patient (the expected signer): an EOA (65-byte ECDSA, malleability-checked) or an
    /// ERC-1271 contract wallet.
    /// @param structHash The EIP-712 struct hash of the request, including `nonce` and `deadline`.
    /// @param nonce The patient's current nonce in this contract ({nonces}); consumed on success.
    /// @param deadline Unix time after which the signature is void.
    /// @param signature The patient's signature over the typed-data digest of `structHash`.
    function _consumePatientSignature(
        address patient,
        bytes32 structHash,
        uint256 nonce,
        uint256 deadline,
        bytes calldata signature
    ) internal {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        if (!SignatureChecker.isValidSignatureNowCalldata(patient, _hashTypedDataV4(structHash), signature)) {
            revert InvalidSignature(patient);
        }
        _useCheckedNonce(patient, nonce);
    }
}
