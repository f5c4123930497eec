#pragma once
// Turns one parsed request into one response: target → route → API key check → rate limit →
// handler. One instance per server, shared by every session; immutable once the io threads run
// (the rate limiter inside is internally synchronised).

#include <memory>
#include <string_view>

#include "auth.hpp"
#include "rate_limit.hpp"
#include "router.hpp"
#include "sluice/config/config.hpp"

namespace sluice::serve {

/// The route label of requests that matched no route (404, 405, a bad target).
inline constexpr std::string_view unmatched_route = "unmatched";

class dispatcher {
public:
    /// rate_limit.requests_per_sec 0 = no limit; rate_clients bounds the buckets kept.
    dispatcher(router routes, api_key_auth auth, const rate_limit_config& rate_limit = {},
               std::size_t rate_clients = 65536);

    /// Calls respond exactly once, inline or later from another thread. Never throws:
    /// an exception from a handler becomes a 500. `peer` identifies the remote address (any
    /// bytes; the rate limit's client when no API key names one).
    /// Returns the pattern of the route that answers ("/v1/features/{set}/{key}"), or
    /// unmatched_route; the view lives as long as the dispatcher.
    std::string_view dispatch(const request& req, std::string_view peer, const responder& respond) const;

    const api_key_auth& auth() const { return auth_; }

private:
    // Answers 429 and returns true when the client has used up its tokens.
    bool throttled(std::string_view key_name, std::string_view peer, const responder& respond) const;

    router router_;
    api_key_auth auth_;
    std::unique_ptr<rate_limiter> limiter_;  // null: no rate limit
};

}  // namespace sluice::serve
