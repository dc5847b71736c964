from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class BeginSessionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BeginSessionResponse(_message.Message):
    __slots__ = ("nonce", "to_sign", "expires_at_unix")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TO_SIGN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    to_sign: bytes
    expires_at_unix: int
    def __init__(self, nonce: _Optional[bytes] = ..., to_sign: _Optional[bytes] = ..., expires_at_unix: _Optional[int] = ...) -> None: ...

class CompleteSessionRequest(_message.Message):
    __slots__ = ("nonce", "certificate", "signature")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    certificate: bytes
    signature: bytes
    def __init__(self, nonce: _Optional[bytes] = ..., certificate: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class CompleteSessionResponse(_message.Message):
    __slots__ = ("token", "citizen", "display_name", "vault", "expires_at_unix")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VAULT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    token: str
    citizen: str
    display_name: str
    vault: str
    expires_at_unix: int
    def __init__(self, token: _Optional[str] = ..., citizen: _Optional[str] = ..., display_name: _Optional[str] = ..., vault: _Optional[str] = ..., expires_at_unix: _Optional[int] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubmitSignatureRequest(_message.Message):
    __slots__ = ("vault", "name", "version", "cms")
    VAULT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CMS_FIELD_NUMBER: _ClassVar[int]
    vault: str
    name: str
    version: int
    cms: bytes
    def __init__(self, vault: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., cms: _Optional[bytes] = ...) -> None: ...

class SubmitSignatureResponse(_message.Message):
    __slots__ = ("valid", "reason", "signer", "version", "sha256", "validated_at_unix", "journaled", "journal_index", "receipt")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    JOURNALED_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_INDEX_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    signer: str
    version: int
    sha256: bytes
    validated_at_unix: int
    journaled: bool
    journal_index: int
    receipt: bytes
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., signer: _Optional[str] = ..., version: _Optional[int] = ..., sha256: _Optional[bytes] = ..., validated_at_unix: _Optional[int] = ..., journaled: _Optional[bool] = ..., journal_index: _Optional[int] = ..., receipt: _Optional[bytes] = ...) -> None: ...
