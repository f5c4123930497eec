#pragma once
// API key authentication of the README's API: keys are configured as SHA-256 hex, presented as
// "Authorization: Bearer <key>" or "X-API-Key: <key>", compared in constant time.
// Built once at server start, then read concurrently by every io thread (immutable).

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "response.hpp"
#include "sluice/config/config.hpp"

namespace sluice::serve {

class api_key_auth {
public:
    /// Entries whose sha256 is not 64 hex digits never match (and are logged once, by name).
    explicit api_key_auth(const std::vector<api_key_config>& keys);

    /// False when no keys are configured: every request is allowed.
    bool enabled() const { return !keys_.empty(); }

    struct verdict {
        enum class kind { allowed, unauthorized, forbidden };
        kind result = kind::allowed;
        std::string key_name;  // the matching key's configured name (never the key itself)
        std::string message;   // for the error body
    };

    /// Authenticates the request and, if scope is not empty, checks the key has that scope.
    verdict check(const request& req, std::string_view scope) const;

private:
    struct entry {
        std::string name;
        std::array<unsigned char, 32> digest{};
        bool valid = false;
        std::vector<std::string> scopes;
    };
    std::vector<entry> keys_;
};

}  // namespace sluice::serve
