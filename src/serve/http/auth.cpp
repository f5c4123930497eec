#include "auth.hpp"

#include <algorithm>
#include <cctype>

#include <boost/beast/core/string.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

namespace sluice::serve {

namespace {

using digest = std::array<unsigned char, 32>;

bool sha256(std::string_view text, digest& out) {
    unsigned int len = 0;
    return EVP_Digest(text.data(), text.size(), out.data(), &len, EVP_sha256(), nullptr) == 1 && len == out.size();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool parse_hex_digest(std::string_view hex, digest& out) {
    if (hex.size() != out.size() * 2) return false;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_value(hex[2 * i]);
        const int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return true;
}

// The key the client presented: "Authorization: Bearer <key>" first, else "X-API-Key". A field
// that appears twice is refused (empty result): which one counts would depend on who reads the
// request, and a proxy in front may have checked the other.
std::string_view presented_key(const request& req) {
    if (req.count(http::field::authorization) > 1 || req.count("X-API-Key") > 1) return {};
    if (auto it = req.find(http::field::authorization); it != req.end()) {
        std::string_view v = trim_ows(it->value());
        const std::size_t sp = v.find(' ');
        if (sp != std::string_view::npos && boost::beast::iequals(v.substr(0, sp), "bearer")) {
            std::string_view token = trim_ows(v.substr(sp + 1));
            if (!token.empty()) return token;
        }
    }
    if (auto it = req.find("X-API-Key"); it != req.end()) return trim_ows(it->value());
    return {};
}

}  // namespace

api_key_auth::api_key_auth(const std::vector<api_key_config>& keys) {
    for (const auto& k : keys) {
        entry e;
        e.name = k.name;
        e.scopes = k.scopes;
        e.valid = parse_hex_digest(k.sha256, e.digest);
        if (!e.valid) http_logger()->error("http: api key '{}' has no valid sha256 hex digest; it will never match", k.name);
        keys_.push_back(std::move(e));
    }
}

api_key_auth::verdict api_key_auth::check(const request& req, std::string_view scope) const {
    verdict v;
    if (!enabled()) return v;
    const std::string_view key = presented_key(req);
    if (key.empty()) {
        v.result = verdict::kind::unauthorized;
        v.message = "one API key is required (Authorization: Bearer <key> or X-API-Key)";
        return v;
    }
    digest presented{};
    if (!sha256(key, presented)) {
        v.result = verdict::kind::unauthorized;
        v.message = "the API key could not be checked";
        return v;
    }
    // Compare against every configured key, without stopping early.
    const entry* found = nullptr;
    for (const entry& e : keys_) {
        const bool same = CRYPTO_memcmp(presented.data(), e.digest.data(), presented.size()) == 0;
        if (same && e.valid && found == nullptr) found = &e;
    }
    if (found == nullptr) {
        v.result = verdict::kind::unauthorized;
        v.message = "the API key is not valid";
        return v;
    }
    v.key_name = found->name;
    if (!scope.empty() && std::find(found->scopes.begin(), found->scopes.end(), scope) == found->scopes.end()) {
        v.result = verdict::kind::forbidden;
        v.message = "API key '" + found->name + "' lacks the '" + std::string(scope) + "' scope";
    }
    return v;
}

}  // namespace sluice::serve
