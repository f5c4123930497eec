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

void dispatcher::dispatch(const request& req, const responder& respond) const {
    try {
        const auto [path, query_text] = split_target(req.target());
        router::match m = router_.find(req.method(), path);
        if (m.result == router::match::outcome::bad_path) {
            respond(error_response(http::status::bad_request, "bad_request", "the request target is not a valid path"));
            return;
        }
        auto query = parse_query(query_text);
        if (!query) {
            respond(error_response(http::status::bad_request, "bad_request", "the query string has a bad %-escape"));
            return;
        }

        if (m.result != router::match::outcome::found) {
            // Unknown paths are not revealed to clients without a valid key.
            if (auth_.enabled() && !m.public_path) {
                auto v = auth_.check(req, {});
                if (v.result == api_key_auth::verdict::kind::unauthorized) {
                    respond(unauthorized(v.message));
                    return;
                }
            }
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
            return;
        }

        std::string key_name;
        if (!m.matched->scope.empty()) {
            auto v = auth_.check(req, m.matched->scope);
            if (v.result == api_key_auth::verdict::kind::unauthorized) {
                respond(unauthorized(v.message));
                return;
            }
            if (v.result == api_key_auth::verdict::kind::forbidden) {
                respond(error_response(http::status::forbidden, "forbidden", v.message));
                return;
            }
            key_name = std::move(v.key_name);
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
}

}  // namespace sluice::serve
