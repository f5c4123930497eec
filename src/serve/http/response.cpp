#include "response.hpp"

#include "sluice/core/log.hpp"

#include <spdlog/spdlog.h>

namespace sluice::serve {

std::string dump_json(const ordered_json& j) {
    return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

response json_response(http::status status, const ordered_json& body) {
    response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = dump_json(body);
    return res;
}

response error_response(http::status status, std::string_view code, std::string_view message) {
    ordered_json body;
    body["error"]["code"] = std::string(code);
    body["error"]["message"] = std::string(message);
    return json_response(status, body);
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::shared_ptr<spdlog::logger> http_logger() {
    const auto& log = module_logger(log_module::http);
    return log;
}

}  // namespace sluice::serve
