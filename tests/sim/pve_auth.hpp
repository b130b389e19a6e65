#pragma once
// Proxmox VE authentication tickets and CSRF prevention tokens, in the real
// formats: "PVE:root@pam:64E10CBA::<base64 signature>" (344 signature
// characters, like an RSA-2048 signature) and "64E10CBA:<43 characters>".
// Signed with an HMAC of the cluster's key instead of the cluster's RSA key;
// both are accepted from 5 minutes in the future up to 2 hours of age.
//
// A partial ticket, after the first factor of a user with two-factor
// authentication, is "PVE:!tfa!<challenge>:64E10CBA::<signature>": the
// challenge JSON with its ':' percent-encoded, signed together with the user
// name as extra data (pve-access-control src/PVE/API2/AccessControl.pm
// create_ticket_do, pve-common src/PVE/Ticket.pm assemble_rsa_ticket). So
// verify_ticket, which knows no extra data, refuses it like a forged one, and
// only verify_tfa_ticket with the same user accepts it.

#include <optional>
#include <string>

namespace pha::sim {

constexpr long long kTicketLifetime = 7200;  // seconds
constexpr long long kTicketMinAge = -300;    // clock skew allowed between nodes

std::string make_ticket(const std::string& key, const std::string& userid, long long unix_time);
// The user a ticket was made for, when its signature is right and its age is
// within the lifetime at `now`.
std::optional<std::string> verify_ticket(const std::string& key, const std::string& ticket,
                                         long long now);

std::string make_tfa_ticket(const std::string& key, const std::string& userid,
                            const std::string& challenge, long long unix_time);
// The challenge of a partial ticket made for `userid`, when its signature
// is right and its age is within the lifetime at `now`.
std::optional<std::string> verify_tfa_ticket(const std::string& key, const std::string& ticket,
                                             const std::string& userid, long long now);

std::string make_csrf_token(const std::string& key, const std::string& userid, long long unix_time);
bool verify_csrf_token(const std::string& key, const std::string& userid, const std::string& token,
                       long long now);

}  // namespace pha::sim
