//! Building SA payloads and selecting from the peer's (RFC 7296 §2.7; IOS: the initiator's order wins).

use crate::config::{EspProposal, IkeProposal};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::keys::IkeSuite;
use crate::wire::{
    DhId, EncrId, EsnId, IntegId, PrfId, Proposal, ProtocolId, Transform, TransformType,
};

/// Negotiated ESP transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspSuite {
    /// Cipher.
    pub encr: EncrAlg,
    /// Integrity.
    pub integ: Option<IntegAlg>,
    /// Extended sequence numbers.
    pub esn: bool,
    /// PFS group (CREATE_CHILD_SA only).
    pub dh: Option<DhGroup>,
}

fn encr_t(e: EncrAlg) -> Transform {
    Transform::with_key_len(TransformType::ENCR, e.id().0, e.key_bits())
}

/// IKE proposals for an SA payload (`spi` empty in IKE_SA_INIT, 8 bytes for a rekey). The group in
/// `first_dh` is moved to the front so it matches the KE payload.
pub fn ike_sa_payload(
    props: &[IkeProposal],
    spi: &[u8],
    first_dh: Option<DhGroup>,
) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| encr_t(*e)).collect();
            t.extend(
                p.prf
                    .iter()
                    .map(|x| Transform::new(TransformType::PRF, x.id().0)),
            );
            t.extend(
                p.integ
                    .iter()
                    .map(|x| Transform::new(TransformType::INTEG, x.id().0)),
            );
            let mut dh = p.dh.clone();
            if let Some(f) = first_dh
                && let Some(pos) = dh.iter().position(|g| *g == f)
            {
                dh.remove(pos);
                dh.insert(0, f);
            }
            t.extend(
                dh.iter()
                    .map(|x| Transform::new(TransformType::DH, x.id().0)),
            );
            Proposal {
                number: (i + 1) as u8,
                protocol: ProtocolId::IKE,
                spi: spi.to_vec(),
                transforms: t,
            }
        })
        .collect()
}

/// ESP proposals with our inbound SPI (`pfs` adds a DH transform, for CREATE_CHILD_SA).
pub fn esp_sa_payload(props: &[EspProposal], spi: u32, pfs: Option<DhGroup>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t = vec![encr_t(p.encr)];
            if let Some(a) = p.integ {
                t.push(Transform::new(TransformType::INTEG, a.id().0));
            }
            if let Some(g) = pfs {
                t.push(Transform::new(TransformType::DH, g.id().0));
            }
            t.push(Transform::new(
                TransformType::ESN,
                if p.esn { EsnId::ESN.0 } else { EsnId::NO_ESN.0 },
            ));
            Proposal {
                number: (i + 1) as u8,
                protocol: ProtocolId::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect()
}

fn first<T: Copy>(
    p: &Proposal,
    tt: TransformType,
    f: impl Fn(&Transform) -> Option<T>,
) -> Option<T> {
    p.transforms
        .iter()
        .filter(|t| t.transform_type == tt)
        .find_map(f)
}

fn has_type(p: &Proposal, tt: TransformType) -> bool {
    p.transforms.iter().any(|t| t.transform_type == tt)
}

/// Responder: picks the first acceptable IKE proposal, each transform in the initiator's order.
/// `ke_group`: the group of the received KE payload, preferred when acceptable.
pub fn select_ike(
    offered: &[Proposal],
    ours: &[IkeProposal],
    ke_group: Option<DhId>,
) -> Option<(u8, IkeSuite)> {
    for p in offered.iter().filter(|p| p.protocol == ProtocolId::IKE) {
        for o in ours {
            let Some(encr) = first(p, TransformType::ENCR, |t| {
                EncrAlg::from_id(EncrId(t.id), t.key_length()).filter(|e| o.encr.contains(e))
            }) else {
                continue;
            };
            let Some(prf) = first(p, TransformType::PRF, |t| {
                PrfAlg::from_id(PrfId(t.id)).filter(|x| o.prf.contains(x))
            }) else {
                continue;
            };
            let integ = if encr.is_aead() {
                None
            } else {
                match first(p, TransformType::INTEG, |t| {
                    IntegAlg::from_id(IntegId(t.id)).filter(|x| o.integ.contains(x))
                }) {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let acceptable = |g: DhGroup| {
                o.dh.contains(&g)
                    && p.transforms
                        .iter()
                        .any(|t| t.transform_type == TransformType::DH && t.id == g.id().0)
            };
            let dh = match ke_group
                .and_then(DhGroup::from_id)
                .filter(|g| acceptable(*g))
            {
                Some(g) => g,
                None => match first(p, TransformType::DH, |t| {
                    DhGroup::from_id(DhId(t.id)).filter(|g| o.dh.contains(g))
                }) {
                    Some(g) => g,
                    None => continue,
                },
            };
            return Some((
                p.number,
                IkeSuite {
                    encr,
                    prf,
                    integ,
                    dh,
                },
            ));
        }
    }
    None
}

/// The single-proposal SA payload of a response.
pub fn ike_chosen(number: u8, s: &IkeSuite, spi: &[u8]) -> Proposal {
    let mut t = vec![
        encr_t(s.encr),
        Transform::new(TransformType::PRF, s.prf.id().0),
    ];
    if let Some(i) = s.integ {
        t.push(Transform::new(TransformType::INTEG, i.id().0));
    }
    t.push(Transform::new(TransformType::DH, s.dh.id().0));
    Proposal {
        number,
        protocol: ProtocolId::IKE,
        spi: spi.to_vec(),
        transforms: t,
    }
}

/// Initiator: reads the responder's choice and checks it is one of ours.
pub fn accept_ike(resp: &[Proposal], ours: &[IkeProposal]) -> Option<IkeSuite> {
    let [p] = resp else { return None };
    select_ike(std::slice::from_ref(p), ours, None)
        .filter(|_| p.transforms.len() <= 5)
        .map(|(_, s)| s)
}

/// Responder: picks an ESP proposal. `with_dh`: the request carried a KE (PFS) and the proposal must name its
/// group; `None` means DH transforms are ignored (IKE_AUTH) or must be absent/NONE.
pub fn select_esp(
    offered: &[Proposal],
    ours: &[EspProposal],
    ke_group: Option<DhId>,
) -> Option<(u8, u32, EspSuite)> {
    for p in offered.iter().filter(|p| p.protocol == ProtocolId::ESP) {
        let Ok(spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
            continue;
        };
        for o in ours {
            let encr_ok = p.transforms.iter().any(|t| {
                t.transform_type == TransformType::ENCR
                    && EncrAlg::from_id(EncrId(t.id), t.key_length()) == Some(o.encr)
            });
            if !encr_ok {
                continue;
            }
            let integ_ok = match o.integ {
                Some(a) => p
                    .transforms
                    .iter()
                    .any(|t| t.transform_type == TransformType::INTEG && t.id == a.id().0),
                None => p
                    .transforms
                    .iter()
                    .filter(|t| t.transform_type == TransformType::INTEG)
                    .all(|t| t.id == IntegId::NONE.0),
            };
            if !integ_ok {
                continue;
            }
            let esn = if has_type(p, TransformType::ESN) {
                let want = if o.esn { EsnId::ESN.0 } else { EsnId::NO_ESN.0 };
                if p.transforms
                    .iter()
                    .any(|t| t.transform_type == TransformType::ESN && t.id == want)
                {
                    o.esn
                } else if p
                    .transforms
                    .iter()
                    .any(|t| t.transform_type == TransformType::ESN && t.id == EsnId::NO_ESN.0)
                {
                    false
                } else {
                    continue;
                }
            } else {
                false
            };
            let dh = match ke_group {
                Some(g) => {
                    let Some(grp) = DhGroup::from_id(g) else {
                        continue;
                    };
                    if !p
                        .transforms
                        .iter()
                        .any(|t| t.transform_type == TransformType::DH && t.id == g.0)
                    {
                        continue;
                    }
                    Some(grp)
                }
                None => None,
            };
            return Some((
                p.number,
                u32::from_be_bytes(spi),
                EspSuite {
                    encr: o.encr,
                    integ: o.integ,
                    esn,
                    dh,
                },
            ));
        }
    }
    None
}

/// The single ESP proposal of a response.
pub fn esp_chosen(number: u8, s: &EspSuite, spi: u32) -> Proposal {
    let mut t = vec![encr_t(s.encr)];
    if let Some(a) = s.integ {
        t.push(Transform::new(TransformType::INTEG, a.id().0));
    }
    if let Some(g) = s.dh {
        t.push(Transform::new(TransformType::DH, g.id().0));
    }
    t.push(Transform::new(
        TransformType::ESN,
        if s.esn { EsnId::ESN.0 } else { EsnId::NO_ESN.0 },
    ));
    Proposal {
        number,
        protocol: ProtocolId::ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms: t,
    }
}

/// Initiator: reads the responder's ESP choice.
pub fn accept_esp(
    resp: &[Proposal],
    ours: &[EspProposal],
    pfs: Option<DhGroup>,
) -> Option<(u32, EspSuite)> {
    let [p] = resp else { return None };
    let (_, spi, mut s) = select_esp(std::slice::from_ref(p), ours, pfs.map(|g| g.id()))?;
    s.dh = pfs;
    Some((spi, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(encr: Vec<EncrAlg>, integ: Vec<IntegAlg>, dh: Vec<DhGroup>) -> IkeProposal {
        IkeProposal {
            encr,
            prf: vec![PrfAlg::HmacSha1, PrfAlg::HmacSha256],
            integ,
            dh,
        }
    }

    /// seed-ipsec-vti.md IK2-5: initiator `aes-cbc-128 aes-cbc-192 / sha1 sha256 / 14 16`, responder
    /// reversed: `aes-cbc-128`, `sha1` and group 14 are selected (the initiator's order wins).
    #[test]
    fn initiators_order_wins_like_ios() {
        let initiator = ike(
            vec![EncrAlg::AesCbc128, EncrAlg::AesCbc192],
            vec![IntegAlg::HmacSha1_96, IntegAlg::HmacSha256_128],
            vec![DhGroup::Modp2048, DhGroup::Ecp256],
        );
        let responder = ike(
            vec![EncrAlg::AesCbc192, EncrAlg::AesCbc128],
            vec![IntegAlg::HmacSha256_128, IntegAlg::HmacSha1_96],
            vec![DhGroup::Ecp256, DhGroup::Modp2048],
        );
        let offered = ike_sa_payload(std::slice::from_ref(&initiator), &[], None);
        let (n, s) = select_ike(&offered, &[responder], None).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            (s.encr, s.integ, s.dh, s.prf),
            (
                EncrAlg::AesCbc128,
                Some(IntegAlg::HmacSha1_96),
                DhGroup::Modp2048,
                PrfAlg::HmacSha1
            )
        );
        assert_eq!(accept_ike(&[ike_chosen(n, &s, &[])], &[initiator]), Some(s));
    }

    #[test]
    fn ke_group_is_preferred_when_acceptable() {
        let p = ike(
            vec![EncrAlg::AesCbc256],
            vec![IntegAlg::HmacSha256_128],
            vec![DhGroup::Modp2048, DhGroup::Curve25519],
        );
        let offered = ike_sa_payload(std::slice::from_ref(&p), &[], None);
        let (_, s) = select_ike(&offered, &[p], Some(DhGroup::Curve25519.id())).unwrap();
        assert_eq!(s.dh, DhGroup::Curve25519);
    }

    #[test]
    fn aead_proposal_needs_no_integrity_and_mixed_responses_are_refused() {
        let gcm = IkeProposal::gcm_default();
        let offered = ike_sa_payload(std::slice::from_ref(&gcm), &[], None);
        let (n, s) = select_ike(&offered, std::slice::from_ref(&gcm), None).unwrap();
        assert!(s.encr.is_aead() && s.integ.is_none());
        // A response carrying two proposals is not a choice.
        assert_eq!(
            accept_ike(&[ike_chosen(n, &s, &[]), ike_chosen(n, &s, &[])], &[gcm]),
            None
        );
    }

    #[test]
    fn esp_selection_honours_integrity_esn_and_pfs_group() {
        let ours = EspProposal::ios_defaults();
        let offered = esp_sa_payload(
            &[EspProposal {
                encr: EncrAlg::AesCbc256,
                integ: Some(IntegAlg::HmacSha256_128),
                esn: false,
            }],
            0x1234_5678,
            Some(DhGroup::Ecp256),
        );
        let (_, spi, s) = select_esp(&offered, &ours, Some(DhGroup::Ecp256.id())).unwrap();
        assert_eq!(
            (spi, s.encr, s.integ, s.dh),
            (
                0x1234_5678,
                EncrAlg::AesCbc256,
                Some(IntegAlg::HmacSha256_128),
                Some(DhGroup::Ecp256)
            )
        );
        assert!(
            select_esp(&offered, &ours, Some(DhGroup::Modp2048.id())).is_none(),
            "KE group not in proposal"
        );
        let (_, _, s) = select_esp(&offered, &ours, None).unwrap();
        assert_eq!(s.dh, None, "IKE_AUTH ignores DH transforms");
        let sha1_only = [EspProposal {
            encr: EncrAlg::AesCbc256,
            integ: Some(IntegAlg::HmacSha1_96),
            esn: false,
        }];
        assert!(select_esp(&offered, &sha1_only, None).is_none());
    }
}
