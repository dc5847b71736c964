from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateVaultRequest(_message.Message):
    __slots__ = ("vault",)
    VAULT_FIELD_NUMBER: _ClassVar[int]
    vault: str
    def __init__(self, vault: _Optional[str] = ...) -> None: ...

class VaultInfo(_message.Message):
    __slots__ = ("vault", "created_at_ns", "key_version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    created_at_ns: int
    key_version: int
    def __init__(self, vault: _Optional[str] = ..., created_at_ns: _Optional[int] = ..., key_version: _Optional[int] = ...) -> None: ...

class DepositHeader(_message.Message):
    __slots__ = ("vault", "name", "content_type", "metadata", "expected_sha256", "request_id", "retain_until", "expected_size")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    content_type: str
    metadata: _containers.ScalarMap[str, str]
    expected_sha256: bytes
    request_id: str
    retain_until: int
    expected_size: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., expected_sha256: _Optional[bytes] = ..., request_id: _Optional[str] = ..., retain_until: _Optional[int] = ..., expected_size: _Optional[int] = ...) -> None: ...

class DepositRequest(_message.Message):
    __slots__ = ("header", "data", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: DepositHeader
    data: bytes
    end: DepositEnd
    def __init__(self, header: _Optional[_Union[DepositHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., end: _Optional[_Union[DepositEnd, _Mapping]] = ...) -> None: ...

class DepositSmallRequest(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: DepositHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[DepositHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class DepositBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[DepositSmallRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[DepositSmallRequest, _Mapping]]] = ...) -> None: ...

class DepositError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class DepositResult(_message.Message):
    __slots__ = ("receipt", "error")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    error: DepositError
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ..., error: _Optional[_Union[DepositError, _Mapping]] = ...) -> None: ...

class DepositBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DepositResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DepositResult, _Mapping]]] = ...) -> None: ...

class DepositEnd(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class ObjectStat(_message.Message):
    __slots__ = ("vault", "name", "version", "object_id", "size", "sha256", "hash_algorithm", "content_type", "metadata", "depositor", "deposited_at_ns", "retain_until", "legal_hold")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    HASH_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEPOSITOR_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    object_id: str
    size: int
    sha256: bytes
    hash_algorithm: str
    content_type: str
    metadata: _containers.ScalarMap[str, str]
    depositor: str
    deposited_at_ns: int
    retain_until: int
    legal_hold: bool
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., object_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., hash_algorithm: _Optional[str] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., depositor: _Optional[str] = ..., deposited_at_ns: _Optional[int] = ..., retain_until: _Optional[int] = ..., legal_hold: _Optional[bool] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("stat", "request_id", "deduplicated_bytes", "stored_bytes", "evidence")
    STAT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    stat: ObjectStat
    request_id: str
    deduplicated_bytes: int
    stored_bytes: int
    evidence: bytes
    def __init__(self, stat: _Optional[_Union[ObjectStat, _Mapping]] = ..., request_id: _Optional[str] = ..., deduplicated_bytes: _Optional[int] = ..., stored_bytes: _Optional[int] = ..., evidence: _Optional[bytes] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("vault", "name", "version", "offset", "length")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    offset: int
    length: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("stat", "data")
    STAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stat: ObjectStat
    data: bytes
    def __init__(self, stat: _Optional[_Union[ObjectStat, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("vault", "name", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("vault", "prefix", "page_size", "page_token", "versions")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    vault: str
    prefix: str
    page_size: int
    page_token: str
    versions: bool
    def __init__(self, vault: _Optional[str] = ..., prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., versions: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("objects", "next_page_token")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectStat]
    next_page_token: str
    def __init__(self, objects: _Optional[_Iterable[_Union[ObjectStat, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("vault", "prefix")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    vault: str
    prefix: str
    def __init__(self, vault: _Optional[str] = ..., prefix: _Optional[str] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class DestroyRequest(_message.Message):
    __slots__ = ("vault", "name", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DestroyReceipt(_message.Message):
    __slots__ = ("vault", "name", "version", "destroyed_at_ns", "actor", "evidence")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESTROYED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    destroyed_at_ns: int
    actor: str
    evidence: bytes
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., destroyed_at_ns: _Optional[int] = ..., actor: _Optional[str] = ..., evidence: _Optional[bytes] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("vault", "name", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("vault", "name", "version", "what")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    what: str
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., what: _Optional[str] = ...) -> None: ...

class CheckReport(_message.Message):
    __slots__ = ("vault", "objects", "chunks", "bytes", "problems", "problems_omitted")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    vault: str
    objects: int
    chunks: int
    bytes: int
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    problems_omitted: int
    def __init__(self, vault: _Optional[str] = ..., objects: _Optional[int] = ..., chunks: _Optional[int] = ..., bytes: _Optional[int] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., problems_omitted: _Optional[int] = ...) -> None: ...

class SetRetentionRequest(_message.Message):
    __slots__ = ("vault", "name", "retain_until", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    retain_until: int
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., retain_until: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("vault", "name", "hold", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    hold: bool
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., hold: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class RotateKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateKeysResponse(_message.Message):
    __slots__ = ("key_version",)
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    key_version: int
    def __init__(self, key_version: _Optional[int] = ...) -> None: ...

class RetireKeyRequest(_message.Message):
    __slots__ = ("key_version",)
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    key_version: int
    def __init__(self, key_version: _Optional[int] = ...) -> None: ...

class RetireKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DestroyVaultRequest(_message.Message):
    __slots__ = ("vault",)
    VAULT_FIELD_NUMBER: _ClassVar[int]
    vault: str
    def __init__(self, vault: _Optional[str] = ...) -> None: ...

class DestroyVaultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSignaturesRequest(_message.Message):
    __slots__ = ("vault", "name", "version")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class StoredSignature(_message.Message):
    __slots__ = ("cms", "chain", "valid", "reason", "validated_at_unix", "signer", "signer_subject", "signing_time_unix", "journal_index", "receipt", "kiosk")
    CMS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNER_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SIGNING_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_INDEX_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    KIOSK_FIELD_NUMBER: _ClassVar[int]
    cms: bytes
    chain: _containers.RepeatedScalarFieldContainer[bytes]
    valid: bool
    reason: str
    validated_at_unix: int
    signer: str
    signer_subject: str
    signing_time_unix: int
    journal_index: int
    receipt: bytes
    kiosk: str
    def __init__(self, cms: _Optional[bytes] = ..., chain: _Optional[_Iterable[bytes]] = ..., valid: _Optional[bool] = ..., reason: _Optional[str] = ..., validated_at_unix: _Optional[int] = ..., signer: _Optional[str] = ..., signer_subject: _Optional[str] = ..., signing_time_unix: _Optional[int] = ..., journal_index: _Optional[int] = ..., receipt: _Optional[bytes] = ..., kiosk: _Optional[str] = ...) -> None: ...

class GetSignaturesResponse(_message.Message):
    __slots__ = ("version", "sha256", "signatures")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    version: int
    sha256: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[StoredSignature]
    def __init__(self, version: _Optional[int] = ..., sha256: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[StoredSignature, _Mapping]]] = ...) -> None: ...
