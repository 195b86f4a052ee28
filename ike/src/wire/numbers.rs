//! Open number spaces from the IANA IKEv2 registries.

macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The registry name, if this value is known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($c)),)* _ => None }
            }
        }
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

open_enum!(
    /// Exchange type (RFC 7296 §3.1).
    ExchangeType(u8) {
        /// IKE_SA_INIT
        IKE_SA_INIT = 34,
        /// IKE_AUTH
        IKE_AUTH = 35,
        /// CREATE_CHILD_SA
        CREATE_CHILD_SA = 36,
        /// INFORMATIONAL
        INFORMATIONAL = 37,
    }
);

open_enum!(
    /// Payload type (RFC 7296 §3.2, RFC 7383).
    PayloadType(u8) {
        /// No next payload
        NONE = 0,
        /// Security Association
        SA = 33,
        /// Key Exchange
        KE = 34,
        /// Identification - Initiator
        IDI = 35,
        /// Identification - Responder
        IDR = 36,
        /// Certificate
        CERT = 37,
        /// Certificate Request
        CERTREQ = 38,
        /// Authentication
        AUTH = 39,
        /// Nonce
        NONCE = 40,
        /// Notify
        NOTIFY = 41,
        /// Delete
        DELETE = 42,
        /// Vendor ID
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator
        TSI = 44,
        /// Traffic Selector - Responder
        TSR = 45,
        /// Encrypted and Authenticated
        SK = 46,
        /// Configuration
        CP = 47,
        /// Extensible Authentication
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383)
        SKF = 53,
    }
);

open_enum!(
    /// Protocol ID (RFC 7296 §3.3.1).
    ProtocolId(u8) {
        /// IKE
        IKE = 1,
        /// AH
        AH = 2,
        /// ESP
        ESP = 3,
    }
);

open_enum!(
    /// Transform type (RFC 7296 §3.3.2).
    TransformType(u8) {
        /// Encryption Algorithm (ENCR)
        ENCR = 1,
        /// Pseudorandom Function (PRF)
        PRF = 2,
        /// Integrity Algorithm (INTEG)
        INTEG = 3,
        /// Diffie-Hellman group (D-H)
        DH = 4,
        /// Extended Sequence Numbers (ESN)
        ESN = 5,
    }
);

open_enum!(
    /// Encryption transform IDs.
    EncrId(u16) {
        /// ENCR_3DES
        ENCR_3DES = 3,
        /// ENCR_NULL
        ENCR_NULL = 11,
        /// ENCR_AES_CBC
        ENCR_AES_CBC = 12,
        /// ENCR_AES_CTR
        ENCR_AES_CTR = 13,
        /// ENCR_AES_GCM_8
        ENCR_AES_GCM_8 = 18,
        /// ENCR_AES_GCM_12
        ENCR_AES_GCM_12 = 19,
        /// ENCR_AES_GCM_16
        ENCR_AES_GCM_16 = 20,
        /// ENCR_CHACHA20_POLY1305
        ENCR_CHACHA20_POLY1305 = 28,
    }
);

open_enum!(
    /// PRF transform IDs.
    PrfId(u16) {
        /// PRF_HMAC_MD5
        PRF_HMAC_MD5 = 1,
        /// PRF_HMAC_SHA1
        PRF_HMAC_SHA1 = 2,
        /// PRF_HMAC_SHA2_256
        PRF_HMAC_SHA2_256 = 5,
        /// PRF_HMAC_SHA2_384
        PRF_HMAC_SHA2_384 = 6,
        /// PRF_HMAC_SHA2_512
        PRF_HMAC_SHA2_512 = 7,
    }
);

open_enum!(
    /// Integrity transform IDs.
    IntegId(u16) {
        /// NONE
        NONE = 0,
        /// AUTH_HMAC_MD5_96
        AUTH_HMAC_MD5_96 = 1,
        /// AUTH_HMAC_SHA1_96
        AUTH_HMAC_SHA1_96 = 2,
        /// AUTH_HMAC_SHA2_256_128
        AUTH_HMAC_SHA2_256_128 = 12,
        /// AUTH_HMAC_SHA2_384_192
        AUTH_HMAC_SHA2_384_192 = 13,
        /// AUTH_HMAC_SHA2_512_256
        AUTH_HMAC_SHA2_512_256 = 14,
    }
);

open_enum!(
    /// Diffie-Hellman group numbers.
    DhId(u16) {
        /// NONE
        NONE = 0,
        /// 1536-bit MODP
        MODP_1536 = 5,
        /// 2048-bit MODP
        MODP_2048 = 14,
        /// 3072-bit MODP
        MODP_3072 = 15,
        /// 256-bit random ECP
        ECP_256 = 19,
        /// 384-bit random ECP
        ECP_384 = 20,
        /// 521-bit random ECP
        ECP_521 = 21,
        /// Curve25519
        CURVE25519 = 31,
    }
);

open_enum!(
    /// Extended sequence numbers transform IDs.
    EsnId(u16) {
        /// No Extended Sequence Numbers
        NO_ESN = 0,
        /// Extended Sequence Numbers
        ESN = 1,
    }
);

open_enum!(
    /// Transform attribute type.
    AttributeType(u16) {
        /// Key Length (in bits), TV format.
        KEY_LENGTH = 14,
    }
);

open_enum!(
    /// Identification type (RFC 7296 §3.5).
    IdType(u8) {
        /// ID_IPV4_ADDR
        ID_IPV4_ADDR = 1,
        /// ID_FQDN
        ID_FQDN = 2,
        /// ID_RFC822_ADDR
        ID_RFC822_ADDR = 3,
        /// ID_IPV6_ADDR
        ID_IPV6_ADDR = 5,
        /// ID_DER_ASN1_DN
        ID_DER_ASN1_DN = 9,
        /// ID_DER_ASN1_GN
        ID_DER_ASN1_GN = 10,
        /// ID_KEY_ID
        ID_KEY_ID = 11,
    }
);

open_enum!(
    /// Authentication method (RFC 7296 §3.8, RFC 7427).
    AuthMethod(u8) {
        /// RSA Digital Signature
        RSA_SIG = 1,
        /// Shared Key Message Integrity Code
        SHARED_KEY = 2,
        /// DSS Digital Signature
        DSS_SIG = 3,
        /// Digital Signature (RFC 7427)
        DIGITAL_SIGNATURE = 14,
    }
);

open_enum!(
    /// Certificate encoding (RFC 7296 §3.6).
    CertEncoding(u8) {
        /// PKCS #7 wrapped X.509 certificate
        PKCS7_X509 = 1,
        /// X.509 Certificate - Signature
        X509_SIGNATURE = 4,
        /// Raw RSA Key
        RAW_RSA_KEY = 11,
        /// Hash and URL of X.509 certificate
        HASH_URL_X509 = 12,
    }
);

open_enum!(
    /// Traffic selector type (RFC 7296 §3.13.1).
    TsType(u8) {
        /// TS_IPV4_ADDR_RANGE
        TS_IPV4_ADDR_RANGE = 7,
        /// TS_IPV6_ADDR_RANGE
        TS_IPV6_ADDR_RANGE = 8,
    }
);

open_enum!(
    /// Notify message type (RFC 7296 §3.10.1 and later RFCs).
    NotifyType(u16) {
        /// UNSUPPORTED_CRITICAL_PAYLOAD
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// INVALID_IKE_SPI
        INVALID_IKE_SPI = 4,
        /// INVALID_MAJOR_VERSION
        INVALID_MAJOR_VERSION = 5,
        /// INVALID_SYNTAX
        INVALID_SYNTAX = 7,
        /// INVALID_MESSAGE_ID
        INVALID_MESSAGE_ID = 9,
        /// INVALID_SPI
        INVALID_SPI = 11,
        /// NO_PROPOSAL_CHOSEN
        NO_PROPOSAL_CHOSEN = 14,
        /// INVALID_KE_PAYLOAD
        INVALID_KE_PAYLOAD = 17,
        /// AUTHENTICATION_FAILED
        AUTHENTICATION_FAILED = 24,
        /// SINGLE_PAIR_REQUIRED
        SINGLE_PAIR_REQUIRED = 34,
        /// NO_ADDITIONAL_SAS
        NO_ADDITIONAL_SAS = 35,
        /// INTERNAL_ADDRESS_FAILURE
        INTERNAL_ADDRESS_FAILURE = 36,
        /// FAILED_CP_REQUIRED
        FAILED_CP_REQUIRED = 37,
        /// TS_UNACCEPTABLE
        TS_UNACCEPTABLE = 38,
        /// INVALID_SELECTORS
        INVALID_SELECTORS = 39,
        /// TEMPORARY_FAILURE
        TEMPORARY_FAILURE = 43,
        /// CHILD_SA_NOT_FOUND
        CHILD_SA_NOT_FOUND = 44,
        /// INITIAL_CONTACT
        INITIAL_CONTACT = 16384,
        /// SET_WINDOW_SIZE
        SET_WINDOW_SIZE = 16385,
        /// ADDITIONAL_TS_POSSIBLE
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// IPCOMP_SUPPORTED
        IPCOMP_SUPPORTED = 16387,
        /// NAT_DETECTION_SOURCE_IP
        NAT_DETECTION_SOURCE_IP = 16388,
        /// NAT_DETECTION_DESTINATION_IP
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// COOKIE
        COOKIE = 16390,
        /// USE_TRANSPORT_MODE
        USE_TRANSPORT_MODE = 16391,
        /// HTTP_CERT_LOOKUP_SUPPORTED
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// REKEY_SA
        REKEY_SA = 16393,
        /// ESP_TFC_PADDING_NOT_SUPPORTED
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// NON_FIRST_FRAGMENTS_ALSO
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// MOBIKE_SUPPORTED
        MOBIKE_SUPPORTED = 16396,
        /// MULTIPLE_AUTH_SUPPORTED
        MULTIPLE_AUTH_SUPPORTED = 16404,
        /// REDIRECT_SUPPORTED
        REDIRECT_SUPPORTED = 16406,
        /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383)
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// SIGNATURE_HASH_ALGORITHMS (RFC 7427)
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
);

impl NotifyType {
    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}
