//! The whole flow driven by standard client libraries instead of hand-written requests: the
//! `openidconnect` crate as a native app's OpenID Connect client (discovery, PKCE S256, nonce,
//! ID token verification against the JWKS, at_hash, userinfo, refresh rotation) and the `oauth2`
//! crate as a backend service (client_credentials). Only the login and consent pages, which a
//! library never drives, go through the test browser.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken, CoreIdTokenClaims,
    CoreIdTokenVerifier, CoreProviderMetadata, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope, TokenResponse,
    TokenUrl, reqwest,
};
use reqwest::StatusCode;

use crate::browser::{Browser, Mobile, PASSWORD, REDIRECT_PORT, SCOPE, location_params, setup};
use crate::helpers::{API, TestApp, jwt_parts, verify_offline};

/// The HTTP client a relying party should use: no redirects (SSRF), bounded time.
pub fn http_client() -> reqwest::Client {
    reqwest::ClientBuilder::new()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

pub async fn discover(app: &TestApp, http: &reqwest::Client) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(app.issuer.clone()).expect("issuer URL");
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .expect("OIDC discovery (metadata and JWKS) succeeds")
}

/// A client built from discovery: authorization endpoint known, token and userinfo endpoints
/// "maybe" (checked when used).
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A public client (no secret) for the mobile app registered by [`setup`].
fn public_client(meta: CoreProviderMetadata, m: &Mobile) -> DiscoveredClient {
    CoreClient::from_provider_metadata(meta, ClientId::new(m.client.client_id.clone()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT_PORT.into()).expect("redirect URL"))
}

/// What the app holds after the redirect: the code and what it must check it against.
struct Authorized {
    code: AuthorizationCode,
    verifier: openidconnect::PkceCodeVerifier,
    nonce: Nonce,
}

/// Builds the authorization URL with openidconnect, lets the test browser log in and consent,
/// and checks the redirect as the app would (state, RFC 9207 iss).
async fn authorize(app: &TestApp, client: &DiscoveredClient, m: &Mobile) -> Authorized {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in SCOPE.split(' ').filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(s.into()));
    }
    let (url, state, nonce) = req.url();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256", "{url}");
    assert_eq!(query["scope"], SCOPE, "openid first, then the added scopes");

    let url = url.as_str();
    let path = url
        .strip_prefix(&app.address)
        .unwrap_or_else(|| panic!("the authorization endpoint is on the issuer: {url}"));
    let mut b = Browser::new(app);
    let page = b.get(path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let r = b.login(&page, &m.username, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "a consent page: {}", r.text());
    assert!(r.text().contains("Allow"), "{}", r.text());
    let r = b.consent(&r, "allow").await;
    let (base, params) = location_params(&r);
    assert_eq!(base, REDIRECT_PORT);
    assert_eq!(
        params.get("state").map(String::as_str),
        Some(state.secret().as_str()),
        "the CSRF state comes back unchanged"
    );
    assert_eq!(params.get("iss"), Some(&app.issuer), "RFC 9207 iss");
    Authorized {
        code: AuthorizationCode::new(params.get("code").expect("code").clone()),
        verifier,
        nonce,
    }
}

/// Verifies the ID token with openidconnect (signature against the discovered JWKS, iss, aud,
/// exp, nonce) and the access token hash, and returns the claims.
fn verified_id_token(
    client: &DiscoveredClient,
    tokens: &CoreTokenResponse,
    nonce: &Nonce,
) -> CoreIdTokenClaims {
    let id_token = tokens.id_token().expect("an ID token for scope openid");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .unwrap_or_else(|e| panic!("openidconnect rejects our ID token: {e:?}"))
        .clone();
    check_at_hash(id_token, &verifier, &claims, tokens.access_token());
    claims
}

fn check_at_hash(
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    claims: &CoreIdTokenClaims,
    access_token: &AccessToken,
) {
    let expected = claims.access_token_hash().expect("at_hash is present");
    let actual = AccessTokenHash::from_token(
        access_token,
        id_token.signing_alg().expect("signing alg"),
        id_token.signing_key(verifier).expect("signing key"),
    )
    .expect("at_hash computes");
    assert_eq!(&actual, expected, "at_hash matches the access token");
}

#[actix_web::test]
async fn openidconnect_crate_logs_in_with_pkce_verifies_tokens_and_refreshes() {
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let http = http_client();
    let meta = discover(&app, &http).await;
    assert_eq!(meta.issuer().as_str(), app.issuer);
    assert!(
        !meta.jwks().keys().is_empty(),
        "discovery fetched the JWKS too"
    );
    let client = public_client(meta, &m);

    let auth = authorize(&app, &client, &m).await;
    let tokens = client
        .exchange_code(auth.code)
        .expect("token endpoint discovered")
        .set_pkce_verifier(auth.verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange through openidconnect: {e:?}"));
    assert_eq!(
        tokens.token_type(),
        &openidconnect::core::CoreTokenType::Bearer
    );
    assert!(tokens.expires_in().is_some());
    let granted: Vec<String> = tokens
        .scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    for s in SCOPE.split(' ') {
        assert!(granted.iter().any(|g| g == s), "{s} granted: {granted:?}");
    }

    let claims = verified_id_token(&client, &tokens, &auth.nonce);
    assert_eq!(claims.subject().as_str(), m.sub);
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert!(
        claims
            .audiences()
            .iter()
            .any(|a| a.as_str() == m.client.client_id)
    );
    assert!(claims.auth_time().is_some(), "auth_time");
    assert_eq!(
        claims.authorized_party().map(|p| p.as_str()),
        Some(m.client.client_id.as_str()),
        "azp"
    );
    // Profile and email claims come from userinfo (OIDC Core §5.4), below.
    // The access token itself is an RFC 9068 JWT for the API audience.
    let access = tokens.access_token().secret();
    assert_eq!(jwt_parts(access).0["typ"], "at+jwt");
    verify_offline(access, &app.jwks().await, &app.issuer, API).expect("access token verifies");

    // Userinfo through openidconnect, which also checks `sub` against the ID token's.
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint discovered")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo through openidconnect: {e:?}"));
    assert_eq!(info.subject().as_str(), m.sub);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.test"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    // Refresh: a new pair, and a new ID token that still verifies.
    let old_refresh = tokens.refresh_token().expect("offline_access").clone();
    let refreshed = client
        .exchange_refresh_token(&old_refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh through openidconnect: {e:?}"));
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token");
    assert_ne!(new_refresh.secret(), old_refresh.secret());
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    if let Some(id_token) = refreshed.id_token() {
        // OIDC Core §12.2: same iss/sub/aud; a nonce, if present, is the original one.
        let verifier = client.id_token_verifier();
        let original = auth.nonce.secret().clone();
        let again = id_token
            .claims(&verifier, |n: Option<&Nonce>| match n {
                None => Ok(()),
                Some(n) if *n.secret() == original => Ok(()),
                Some(_) => Err("a different nonce".to_owned()),
            })
            .unwrap_or_else(|e| panic!("refreshed ID token: {e:?}"));
        assert_eq!(again.subject(), claims.subject());
        check_at_hash(id_token, &verifier, again, refreshed.access_token());
    }

    // The app keeps going: the rotated token is used once more, so the first one's successor
    // is spent and the retry grace window (`refresh_reuse_grace`) no longer covers it.
    let newest = client
        .exchange_refresh_token(new_refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("second refresh: {e:?}"));
    let newest = newest.refresh_token().expect("rotated again").clone();

    // Replaying the first refresh token: invalid_grant, as openidconnect's error type.
    let replay = client
        .exchange_refresh_token(&old_refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect_err("a rotated refresh token is refused");
    match &replay {
        RequestTokenError::ServerResponse(e) => {
            assert_eq!(*e.error(), CoreErrorResponseType::InvalidGrant, "{e:?}");
        }
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
    // Reuse detection revoked the whole family, including the newest refresh token.
    let after = client
        .exchange_refresh_token(&newest)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect_err("the family is revoked after reuse");
    assert!(
        matches!(&after, RequestTokenError::ServerResponse(e) if *e.error() == CoreErrorResponseType::InvalidGrant),
        "{after:?}"
    );
}

#[actix_web::test]
async fn openidconnect_rejects_an_id_token_with_the_wrong_nonce_or_audience() {
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let http = http_client();
    let client = public_client(discover(&app, &http).await, &m);
    let auth = authorize(&app, &client, &m).await;
    let tokens = client
        .exchange_code(auth.code)
        .expect("token endpoint")
        .set_pkce_verifier(auth.verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}"));
    let id_token = tokens.id_token().expect("ID token");
    let verifier = client.id_token_verifier();

    // The right nonce verifies (so the failures below are the checks, not a broken token).
    id_token
        .claims(&verifier, &auth.nonce)
        .expect("the right nonce verifies");
    match id_token.claims(&verifier, &Nonce::new("not-the-nonce-we-sent".into())) {
        Err(ClaimsVerificationError::InvalidNonce(_)) => {}
        other => panic!("a wrong nonce must be rejected, got {other:?}"),
    }
    // Another relying party must not accept it either.
    let other = CoreClient::from_provider_metadata(
        discover(&app, &http).await,
        ClientId::new("some-other-client".into()),
        None,
    );
    match id_token.claims(&other.id_token_verifier(), &auth.nonce) {
        Err(ClaimsVerificationError::InvalidAudience(_)) => {}
        other => panic!("another client_id must be rejected, got {other:?}"),
    }
    // A tampered signature fails against the JWKS.
    let raw = serde_json::to_value(id_token).expect("serialize");
    let raw = raw.as_str().expect("compact JWT");
    let (head, sig) = raw.rsplit_once('.').expect("three parts");
    let mut sig: Vec<char> = sig.chars().collect();
    sig[3] = if sig[3] == 'A' { 'B' } else { 'A' };
    let forged: CoreIdToken = format!("{head}.{}", sig.into_iter().collect::<String>())
        .parse()
        .expect("still a JWT");
    match forged.claims(&verifier, &auth.nonce) {
        Err(ClaimsVerificationError::SignatureVerification(_)) => {}
        other => panic!("a bad signature must be rejected, got {other:?}"),
    }
}

#[actix_web::test]
async fn oauth2_crate_gets_a_client_credentials_token() {
    let app = TestApp::spawn().await;
    let svc = app.add_service_client().await;
    let http = http_client();
    let meta = discover(&app, &http).await;
    let token_url = TokenUrl::new(
        meta.token_endpoint()
            .expect("token_endpoint advertised")
            .to_string(),
    )
    .expect("token URL");

    let client = oauth2::basic::BasicClient::new(ClientId::new(svc.client_id.clone()))
        .set_client_secret(ClientSecret::new(svc.secret().to_owned()))
        .set_token_uri(token_url.clone());
    let tokens = client
        .exchange_client_credentials()
        .add_scope(Scope::new("api:read".into()))
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("client_credentials through oauth2: {e:?}"));
    assert_eq!(tokens.token_type(), &oauth2::basic::BasicTokenType::Bearer);
    assert_eq!(
        tokens
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["api:read".to_owned()])
    );
    assert!(tokens.refresh_token().is_none(), "no refresh token here");
    let expires = tokens.expires_in().expect("expires_in");
    assert!(
        expires.as_secs() > 0 && expires.as_secs() <= 600,
        "{expires:?}"
    );
    let v = verify_offline(
        tokens.access_token().secret(),
        &app.jwks().await,
        &app.issuer,
        API,
    )
    .expect("the access token verifies offline");
    assert_eq!(v.claims["sub"], svc.client_id.as_str());
    assert_eq!(v.claims["scope"], "api:read");

    // client_secret_post works too, through the same library.
    let post = client.clone().set_auth_type(oauth2::AuthType::RequestBody);
    post.exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("client_secret_post: {e:?}"));

    // A wrong secret: invalid_client, parsed by oauth2 into its error type.
    let wrong = oauth2::basic::BasicClient::new(ClientId::new(svc.client_id.clone()))
        .set_client_secret(ClientSecret::new("not-the-secret".into()))
        .set_token_uri(token_url);
    match wrong
        .exchange_client_credentials()
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(
            *e.error(),
            oauth2::basic::BasicErrorResponseType::InvalidClient,
            "{e:?}"
        ),
        other => panic!("expected invalid_client, got {other:?}"),
    }
}
