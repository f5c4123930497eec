#include "dispatch.hpp"

#include <spdlog/spdlog.h>

namespace sluice::serve {

namespace {

response unauthorized(const std::string& message) {
    response res = error_response(http::status::unauthorized, "unauthorized", message);
    res.set(http::field::www_authenticate, "Bearer");
    return res;
}

}  // namespace

dispatcher::dispatcher(router routes, api_key_auth auth, const rate_limit_config& rate_limit,
                       std::size_t rate_clients)
    : router_(std::move(routes)), auth_(std::move(auth)) {
    if (rate_limit.requests_per_sec > 0)
        limiter_ = std::make_unique<rate_limiter>(rate_limit.requests_per_sec, rate_limit.burst, rate_clients);
}

bool dispatcher::throttled(std::string_view key_name, std::string_view peer, const responder& respond) const {
    if (!limiter_) return false;
    // Separate namespaces, so a key named like an address never shares its bucket.
    std::string client;
    client.reserve(1 + std::max(key_name.size(), peer.size()));
    if (!key_name.empty()) {
        client.push_back('k');
        client.append(key_name);
    } else {
        client.push_back('a');
        client.append(peer);
    }
    const std::uint32_t wait = limiter_->acquire(client, rate_limiter::clock::now());
    if (wait == 0) return false;
    response res = error_response(http::status::too_many_requests, "rate_limited",
                                  "too many requests from this client; retry in " + std::to_string(wait) + " s");
    res.set(http::field::retry_after, std::to_string(wait));
    respond(std::move(res));
    return true;
}

std::string_view dispatcher::dispatch(const request& req, std::string_view peer, const responder& respond) const {
    std::string_view route = unmatched_route;
    try {
        const auto [path, query_text] = split_target(req.target());
        router::match m = router_.find(req.method(), path);
        if (m.result == router::match::outcome::bad_path) {
            respond(error_response(http::status::bad_request, "bad_request", "the request target is not a valid path"));
            return route;
        }
        auto query = parse_query(query_text);
        if (!query) {
            respond(error_response(http::status::bad_request, "bad_request", "the query string has a bad %-escape"));
            return route;
        }

        if (m.result != router::match::outcome::found) {
            std::string key_name;
            // Unknown paths are not revealed to clients without a valid key.
            if (auth_.enabled() && !m.public_path) {
                auto v = auth_.check(req, {});
                if (v.result == api_key_auth::verdict::kind::unauthorized) {
                    respond(unauthorized(v.message));
                    return route;
                }
                key_name = std::move(v.key_name);
            }
            if (!m.public_path && throttled(key_name, peer, respond)) return route;
            if (m.result == router::match::outcome::not_found) {
                respond(error_response(http::status::not_found, "not_found",
                                       "no resource at " + std::string(path)));
            } else {
                response res = error_response(
                    http::status::method_not_allowed, "method_not_allowed",
                    "method " + std::string(req.method_string()) + " is not allowed here; allowed: " + m.allow);
                res.set(http::field::allow, m.allow);
                respond(std::move(res));
            }
            return route;
        }

        route = m.matched->pattern;
        std::string key_name;
        // Routes that need no scope (health probes, the status page) are neither
        // authenticated nor rate limited: a probe must never be refused for being frequent.
        if (!m.matched->scope.empty()) {
            auto v = auth_.check(req, m.matched->scope);
            if (v.result == api_key_auth::verdict::kind::unauthorized) {
                respond(unauthorized(v.message));
                return route;
            }
            if (v.result == api_key_auth::verdict::kind::forbidden) {
                respond(error_response(http::status::forbidden, "forbidden", v.message));
                return route;
            }
            key_name = std::move(v.key_name);
            if (throttled(key_name, peer, respond)) return route;
        }

        request_context ctx{req, std::move(m.params), std::move(*query), std::move(key_name)};
        m.matched->fn(ctx, respond);
    } catch (const std::exception& e) {
        http_logger()->error("http: handler for {} failed: {}", std::string(req.target()), e.what());
        respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
    } catch (...) {
        http_logger()->error("http: handler for {} failed with an unknown exception", std::string(req.target()));
        respond(error_response(http::status::internal_server_error, "internal_error", "internal error"));
    }
    return route;
}

}  // namespace sluice::serve
