#include "dispatch.hpp"

#include <boost/asio/ip/address.hpp>
#include <spdlog/spdlog.h>

namespace sluice::serve {

namespace {

response unauthorized(const std::string& message) {
    response res = error_response(http::status::unauthorized, "unauthorized", message);
    res.set(http::field::www_authenticate, "Bearer");
    return res;
}

// The remote address's bytes (4 or 16, as the session keeps them) as text.
std::string address_text(std::string_view peer) {
    namespace ip = boost::asio::ip;
    if (peer.size() == 4) {
        ip::address_v4::bytes_type b{};
        std::copy(peer.begin(), peer.end(), reinterpret_cast<char*>(b.data()));
        return ip::address_v4(b).to_string();
    }
    if (peer.size() == 16) {
        ip::address_v6::bytes_type b{};
        std::copy(peer.begin(), peer.end(), reinterpret_cast<char*>(b.data()));
        const ip::address_v6 a(b);
        return a.is_v4_mapped() ? ip::make_address_v4(ip::v4_mapped, a).to_string() : a.to_string();
    }
    return "unknown";
}

// An answer's outcome as the activity log writes it.
std::string outcome_of(unsigned status) {
    if (status < 300) return "ok";
    if (status == 401 || status == 403) return "refused";
    if (status < 500) return "rejected";
    return "failed";
}

// A stream for a streamed route called without one: gathers the answer and responds once.
class gathered_stream final : public answer_stream {
public:
    explicit gathered_stream(responder respond) : respond_(std::move(respond)) {}
    result<std::size_t> read_body(char*, std::size_t) override { return std::size_t{0}; }
    void refuse(unsigned status, std::string code, std::string message) override {
        respond_(error_response(static_cast<http::status>(status), code, message));
    }
    void begin(std::string content_type, std::vector<std::pair<std::string, std::string>> headers,
               std::vector<std::string>) override {
        res_.result(http::status::ok);
        res_.set(http::field::content_type, content_type);
        for (auto& [name, v] : headers) res_.set(name, v);
    }
    bool write(std::string_view bytes) override {
        res_.body().append(bytes);
        return true;
    }
    void finish(std::vector<std::pair<std::string, std::string>> trailers) override {
        for (auto& [name, v] : trailers) res_.set(name, v);
        respond_(std::move(res_));
    }
    void abort(const std::string& why) override {
        respond_(error_response(http::status::internal_server_error, "internal_error", why));
    }

private:
    responder respond_;
    response res_;
};

}  // namespace

bool dispatcher::streamed(const request& header, bool& body_streams) const {
    body_streams = false;
    // Streamed routes take POST only: every other request (the GETs of the hot path) is told at once.
    if (header.method() != http::verb::post) return false;
    const auto [path, query_text] = split_target(header.target());
    const router::match m = router_.find(header.method(), path);
    if (m.result != router::match::outcome::found || !m.matched->stream_fn) return false;
    const auto type = table_format_from(header[http::field::content_type]);
    body_streams = type.has_value() && header.method() == http::verb::post;
    return true;
}

dispatcher::dispatcher(router routes, api_key_auth auth, const rate_limit_config& rate_limit,
                       std::size_t rate_clients, activity_recorder* activity)
    : router_(std::move(routes)), auth_(std::move(auth)), limiter_(make_limiter(rate_limit, rate_clients)),
      activity_(activity) {}

dispatcher::dispatcher(router routes, api_key_auth auth, std::shared_ptr<rate_limiter> limiter,
                       activity_recorder* activity)
    : router_(std::move(routes)), auth_(std::move(auth)), limiter_(std::move(limiter)), activity_(activity) {}

std::shared_ptr<rate_limiter> dispatcher::make_limiter(const rate_limit_config& rate_limit, std::size_t rate_clients) {
    if (rate_limit.requests_per_sec <= 0) return nullptr;
    return std::make_shared<rate_limiter>(rate_limit.requests_per_sec, rate_limit.burst, rate_clients);
}

void dispatcher::refused(std::string_view peer, std::string_view route, const std::string& reason,
                         std::string_view request_id) const {
    if (activity_ == nullptr) return;
    activity_->auth_failure(address_text(peer), std::string(route), reason, std::string(request_id));
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

std::string_view dispatcher::dispatch(const request& req, std::string_view peer, std::string_view request_id,
                                      const responder& respond, std::shared_ptr<answer_stream> stream) const {
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
                    refused(peer, path, v.message, request_id);
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
                refused(peer, route, v.message, request_id);
                respond(unauthorized(v.message));
                return route;
            }
            if (v.result == api_key_auth::verdict::kind::forbidden) {
                refused(peer, route, v.message, request_id);
                respond(error_response(http::status::forbidden, "forbidden", v.message));
                return route;
            }
            key_name = std::move(v.key_name);
            if (throttled(key_name, peer, respond)) return route;
        }

        request_context ctx{req, std::move(m.params), std::move(*query), std::move(key_name), std::string(request_id),
                            activity_ ? address_text(peer) : std::string(),
                            [this, &req](std::string_view scope) {
                                return !auth_.enabled() ||
                                       auth_.check(req, scope).result == api_key_auth::verdict::kind::allowed;
                            }};
        if (activity_ != nullptr && route.rfind("/v1/admin/", 0) == 0 && route != "/v1/admin/activity") {
            // Every request to the admin routes is a row: who, which route, and how it ended. Reads
            // of the log itself, of the catalog and of /metrics, polled every few seconds by the
            // status page and scrapers, are not (the log would grow by being watched).
            activity_event e;
            e.actor = ctx.api_key_name.empty() ? "anonymous" : ctx.api_key_name;
            e.action = "admin_request";
            e.target = std::string(req.method_string()) + " " + std::string(path);
            e.request_id = ctx.request_id;
            e.client = ctx.client;
            m.matched->fn(ctx, [this, e = std::move(e), respond](response res) mutable {
                e.outcome = outcome_of(res.result_int());
                e.detail = {{"status", res.result_int()}};
                activity_->record(std::move(e));
                respond(std::move(res));
            });
            return route;
        }
        if (m.matched->stream_fn) {
            m.matched->stream_fn(ctx, stream ? std::move(stream) : std::make_shared<gathered_stream>(respond));
            return route;
        }
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
