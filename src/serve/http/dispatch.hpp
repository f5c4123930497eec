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
#include "sluice/serve/services.hpp"

namespace sluice::serve {

/// The route label of requests that matched no route (404, 405, a bad target).
inline constexpr std::string_view unmatched_route = "unmatched";

class dispatcher {
public:
    /// rate_limit.requests_per_sec 0 = no limit; rate_clients bounds the buckets kept.
    /// activity (may be null) hears of auth failures and admin requests.
    dispatcher(router routes, api_key_auth auth, const rate_limit_config& rate_limit = {},
               std::size_t rate_clients = 65536, activity_recorder* activity = nullptr);
    /// With a rate limiter of a previous generation (a reload that left the rate limit as it was
    /// keeps every client's bucket); null = no limit.
    dispatcher(router routes, api_key_auth auth, std::shared_ptr<rate_limiter> limiter, activity_recorder* activity);

    /// A limiter for rate_limit, or null when it sets no limit.
    static std::shared_ptr<rate_limiter> make_limiter(const rate_limit_config& rate_limit, std::size_t rate_clients = 65536);
    const std::shared_ptr<rate_limiter>& limiter() const { return limiter_; }

    /// Calls respond exactly once, inline or later from another thread. Never throws:
    /// an exception from a handler becomes a 500. `peer` identifies the remote address (any
    /// bytes; the rate limit's client when no API key names one).
    /// Returns the pattern of the route that answers ("/v1/features/{set}/{key}"), or
    /// unmatched_route; the view lives as long as the dispatcher.
    /// `request_id` is the request's X-Request-Id (handlers and the activity log see it).
    /// A streamed route (router::add_streamed) answers through `stream`; without one (the fuzz
    /// target, tests), through a stream that gathers the whole answer and hands it to respond.
    std::string_view dispatch(const request& req, std::string_view peer, std::string_view request_id,
                              const responder& respond, std::shared_ptr<answer_stream> stream = nullptr) const;
    /// True when the request (its header) goes to a streamed route: the session then gives it a
    /// stream. body_streams: also its body is read as it arrives (an NDJSON or CSV body), bounded
    /// by streamed_body_limit instead of the ordinary body limit.
    bool streamed(const request& header, bool& body_streams) const;
    std::uint64_t streamed_body_limit = 0;

    const api_key_auth& auth() const { return auth_; }

private:
    // Answers 429 and returns true when the client has used up its tokens.
    bool throttled(std::string_view key_name, std::string_view peer, const responder& respond) const;

    // An authentication refused (401/403), for the activity log.
    void refused(std::string_view peer, std::string_view route, const std::string& reason, std::string_view request_id) const;

    router router_;
    api_key_auth auth_;
    std::shared_ptr<rate_limiter> limiter_;  // null: no rate limit
    activity_recorder* activity_ = nullptr;
};

}  // namespace sluice::serve
