use super::*;

const NOW: u64 = 1_800_000_000_000;
const YEAR: u64 = 365 * 24 * 3600 * 1000;

fn details(user_id: &str, role: Role) -> UserDetails {
    UserDetails {
        user_id: user_id.into(),
        display_name: format!("Name of {user_id}"),
        role,
        sector: "police".into(),
        certified: Default::default(),
    }
}

/// An invited user's chain: authority → invite key → identity → device.
fn invited_chain(authority: &Authority, user_id: &str, device: [u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let seed = [9u8; 32];
    let user = authority.certify_user(
        &details(user_id, Role::Leader),
        invite_public_key(&seed),
        true,
        NOW,
        YEAR,
    );
    let identity = IdentityKey::generate();
    let binding = bind_identity(&seed, user_id, identity.public());
    let device_cert = identity.certify_device(user_id, device.into(), NOW);
    (
        IdentityKey::chain(user, Some(binding), device_cert),
        identity.public(),
    )
}

#[test]
fn an_invited_users_chain_verifies_to_its_identity_key() {
    let authority = Authority::generate();
    let anchor = TrustAnchor::new(authority.public());
    let (chain, identity) = invited_chain(&authority, "ada", [1; 32]);
    let verified = anchor.verify(&chain, &[1; 32], NOW + 1).unwrap();
    assert_eq!(verified.user_id, "ada");
    assert_eq!(verified.role, Role::Leader);
    assert_eq!(verified.sector, "police");
    assert_eq!(verified.identity_key, identity);
}

#[test]
fn a_directly_certified_identity_needs_no_binding() {
    let authority = Authority::generate();
    let identity = IdentityKey::generate();
    let user = authority.certify_user(
        &details("staff", Role::Staff),
        identity.public(),
        false,
        NOW,
        YEAR,
    );
    let chain = IdentityKey::chain(
        user,
        None,
        identity.certify_device("staff", [2; 32].into(), NOW),
    );
    let verified = TrustAnchor::new(authority.public())
        .verify(&chain, &[2; 32], NOW)
        .unwrap();
    assert_eq!(verified.role, Role::Staff);
}

#[test]
fn chains_outside_the_authority_are_refused() {
    let authority = Authority::generate();
    let anchor = TrustAnchor::new(authority.public());
    let (chain, _) = invited_chain(&Authority::generate(), "mallory", [1; 32]);
    assert_eq!(
        anchor.verify(&chain, &[1; 32], NOW),
        Err(TrustError::UnknownAuthority)
    );
    // A chain that names the right authority but was signed by another key.
    let forger = Authority::generate();
    let mut decoded = CredentialChain::decode(chain.as_slice()).unwrap();
    let mut user_cert = decoded.user_certificate.take().unwrap();
    let mut body = UserCertificate::decode(user_cert.body.as_slice()).unwrap();
    body.authority_key = authority.public().to_vec();
    user_cert.body = body.encode_to_vec();
    user_cert.signature = forger
        .certify_user(&details("x", Role::Leader), [0; 32], false, NOW, YEAR)
        .signature;
    decoded.user_certificate = Some(user_cert);
    assert_eq!(
        anchor.verify(&decoded.encode_to_vec(), &[1; 32], NOW),
        Err(TrustError::BadSignature("user certificate"))
    );
}

#[test]
fn a_chain_for_another_device_or_time_is_refused() {
    let authority = Authority::generate();
    let anchor = TrustAnchor::new(authority.public());
    let (chain, _) = invited_chain(&authority, "ada", [1; 32]);
    assert_eq!(
        anchor.verify(&chain, &[2; 32], NOW),
        Err(TrustError::WrongDevice)
    );
    // Clocks disagree: within the leeway at either end, the chain holds;
    // beyond it, it is refused.
    let leeway = super::CLOCK_LEEWAY_MS;
    assert!(anchor.verify(&chain, &[1; 32], NOW - leeway).is_ok());
    assert!(anchor.verify(&chain, &[1; 32], NOW + YEAR).is_ok());
    assert_eq!(
        anchor.verify(&chain, &[1; 32], NOW + YEAR + leeway),
        Err(TrustError::Expired)
    );
    assert_eq!(
        anchor.verify(&chain, &[1; 32], NOW - leeway - 1),
        Err(TrustError::Expired)
    );
}

#[test]
fn a_binding_by_someone_without_the_invite_secret_is_refused() {
    let authority = Authority::generate();
    let seed = [9u8; 32];
    let user = authority.certify_user(
        &details("ada", Role::Leader),
        invite_public_key(&seed),
        true,
        NOW,
        YEAR,
    );
    let relay_identity = IdentityKey::generate();
    // The relay does not know the seed; it signs with a key of its own.
    let binding = bind_identity(&[8u8; 32], "ada", relay_identity.public());
    let chain = IdentityKey::chain(
        user,
        Some(binding),
        relay_identity.certify_device("ada", [1; 32].into(), NOW),
    );
    assert_eq!(
        TrustAnchor::new(authority.public()).verify(&chain, &[1; 32], NOW),
        Err(TrustError::BadSignature("identity binding"))
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let anchor = TrustAnchor::new([0; 32]);
    for bytes in [&b""[..], b"ada", &[0xff; 40]] {
        assert!(anchor.verify(bytes, &[1; 32], NOW).is_err());
    }
}

#[test]
fn safety_numbers_agree_and_change_with_the_key() {
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let number = safety_number(("ada", &a), ("bob", &b));
    assert_eq!(number, safety_number(("bob", &b), ("ada", &a)));
    assert_eq!(number.split(' ').count(), 12);
    assert!(number
        .split(' ')
        .all(|g| g.len() == 5 && g.bytes().all(|d| d.is_ascii_digit())));
    assert_ne!(number, safety_number(("ada", &a), ("bob", &c)));
}

/// A chain whose user certificate `kim` signed under `delegation`.
fn delegated_chain(kim: &IdentityKey, delegation: Signed, role: Role, device: [u8; 32]) -> Vec<u8> {
    let certifier = Certifier::Delegate {
        key: IdentityKey::from_secret_bytes(&kim.to_secret_bytes()),
        delegation: delegation.clone(),
        authority_key: delegation_authority(&delegation),
        may_certify_staff: true,
    };
    let lee = IdentityKey::generate();
    let terms = CertificateTerms {
        subject_key: lee.public(),
        bound_by_invite: false,
        not_before_ms: NOW,
        validity_ms: YEAR,
    };
    let user = certifier.certify_user(&details("lee", role), &terms);
    IdentityKey::delegated_chain(
        user,
        None,
        lee.certify_device("lee", device.into(), NOW),
        certifier.delegation().cloned(),
    )
}

fn delegation_authority(signed: &Signed) -> [u8; 32] {
    let delegation = convene_proto::trust::StaffDelegation::decode(signed.body.as_slice()).unwrap();
    delegation.authority_key.as_slice().try_into().unwrap()
}

#[test]
fn a_delegated_certificate_verifies_within_its_delegation_only() {
    let authority = Authority::generate();
    let anchor = TrustAnchor::new(authority.public());
    let kim = IdentityKey::generate();
    let leaders_only = authority.delegate("kim", kim.public(), false, NOW, YEAR);

    let chain = delegated_chain(&kim, leaders_only.clone(), Role::Leader, [1; 32]);
    let verified = anchor.verify(&chain, &[1; 32], NOW + 1).unwrap();
    assert_eq!(verified.user_id, "lee");
    assert_eq!(
        verified.certified_by,
        Some(("kim".to_string(), kim.public()))
    );

    // Beyond its scope, after its end, or signed by someone else: refused.
    let staff = delegated_chain(&kim, leaders_only.clone(), Role::Staff, [2; 32]);
    assert!(matches!(
        anchor.verify(&staff, &[2; 32], NOW + 1),
        Err(TrustError::Mismatch(_))
    ));
    assert_eq!(
        anchor.verify(&chain, &[1; 32], NOW + 2 * YEAR),
        Err(TrustError::Expired)
    );
    let forged = Authority::generate().delegate("kim", kim.public(), true, NOW, YEAR);
    let forged_chain = delegated_chain(&kim, forged, Role::Leader, [3; 32]);
    assert_eq!(
        anchor.verify(&forged_chain, &[3; 32], NOW + 1),
        Err(TrustError::UnknownAuthority)
    );

    // Once revoked (alone, or with its staff member), nothing it signed
    // verifies, cached or not.
    anchor.revocations().add("kim", &kim.public());
    assert_eq!(
        anchor.verify(&chain, &[1; 32], NOW + 1),
        Err(TrustError::Revoked)
    );
    let suspended = TrustAnchor::new(authority.public());
    suspended.revocations().add("kim", &[]);
    assert_eq!(
        suspended.verify(&chain, &[1; 32], NOW + 1),
        Err(TrustError::Revoked)
    );
}
