#include "tests/sim/pve_auth.hpp"

#include <array>
#include <cstdio>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

std::string hmac_sha256(const std::string& key, const std::string& data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len);
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

std::string base64(const std::string& bytes, bool pad) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  if (!pad) {
    while (!out.empty() && out.back() == '=') {
      out.pop_back();
    }
  }
  return out;
}

std::string hex_time(long long t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08llX", static_cast<unsigned long long>(t));
  return buf;
}

std::optional<long long> parse_hex_time(const std::string& s) {
  if (s.size() != 8) {
    return std::nullopt;
  }
  long long v = 0;
  for (const char c : s) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    v = v * 16 + d;
  }
  return v;
}

// 256 bytes, the size of an RSA-2048 signature.
std::string ticket_signature(const std::string& key, const std::string& data) {
  std::string sig;
  for (int i = 0; i < 8; ++i) {
    sig += hmac_sha256(key, std::to_string(i) + "|" + data);
  }
  return base64(sig, true);
}

bool age_ok(long long t, long long now) {
  const auto age = now - t;
  return age > kTicketMinAge && age < kTicketLifetime;
}

}  // namespace

std::string make_ticket(const std::string& key, const std::string& userid, long long unix_time) {
  const auto data = "PVE:" + userid + ":" + hex_time(unix_time);
  return data + "::" + ticket_signature(key, data);
}

std::optional<std::string> verify_ticket(const std::string& key, const std::string& ticket,
                                         long long now) {
  const auto sep = ticket.rfind("::");
  if (!ticket.starts_with("PVE:") || sep == std::string::npos) {
    return std::nullopt;
  }
  const auto data = ticket.substr(0, sep);
  const auto sig = ticket.substr(sep + 2);
  if (!constant_time_equals(sig, ticket_signature(key, data))) {
    return std::nullopt;
  }
  const auto colon = data.rfind(':');
  if (colon <= 4) {
    return std::nullopt;
  }
  const auto t = parse_hex_time(data.substr(colon + 1));
  if (!t || !age_ok(*t, now)) {
    return std::nullopt;
  }
  return data.substr(4, colon - 4);
}

std::string make_tfa_ticket(const std::string& key, const std::string& userid,
                            const std::string& challenge, long long unix_time) {
  std::string escaped;
  for (const char c : challenge) {
    escaped += c == ':' ? std::string("%3A") : std::string(1, c);
  }
  const auto data = "PVE:!tfa!" + escaped + ":" + hex_time(unix_time);
  return data + "::" + ticket_signature(key, data + ":" + userid);
}

std::optional<std::string> verify_tfa_ticket(const std::string& key, const std::string& ticket,
                                             const std::string& userid, long long now) {
  const auto sep = ticket.rfind("::");
  if (!ticket.starts_with("PVE:!tfa!") || sep == std::string::npos) {
    return std::nullopt;
  }
  const auto data = ticket.substr(0, sep);
  if (!constant_time_equals(ticket.substr(sep + 2), ticket_signature(key, data + ":" + userid))) {
    return std::nullopt;
  }
  const auto colon = data.rfind(':');
  const auto t = parse_hex_time(data.substr(colon + 1));
  if (!t || !age_ok(*t, now)) {
    return std::nullopt;
  }
  std::string challenge;
  const auto escaped = data.substr(9, colon - 9);
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped.compare(i, 3, "%3A") == 0) {
      challenge += ':';
      i += 2;
    } else {
      challenge += escaped[i];
    }
  }
  return challenge;
}

std::string make_csrf_token(const std::string& key, const std::string& userid,
                            long long unix_time) {
  const auto t = hex_time(unix_time);
  return t + ":" + base64(hmac_sha256(key, t + ":" + userid), false);
}

bool verify_csrf_token(const std::string& key, const std::string& userid, const std::string& token,
                       long long now) {
  const auto colon = token.find(':');
  if (colon == std::string::npos) {
    return false;
  }
  const auto t = parse_hex_time(token.substr(0, colon));
  if (!t || !age_ok(*t, now)) {
    return false;
  }
  return constant_time_equals(token, make_csrf_token(key, userid, *t));
}

}  // namespace pha::sim
