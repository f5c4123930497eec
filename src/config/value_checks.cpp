// The rules a single config value must follow (see value_checks.hpp), and parse_duration_ms.

#include "value_checks.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

namespace sluice::config_detail {

bool is_identifier(std::string_view s, std::size_t max_len) {
    if (s.empty() || s.size() > max_len) return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string identifier_rule(std::size_t max_len) {
    return "must be an identifier (lowercase letters, digits and _, not starting with a digit, at most " +
           std::to_string(max_len) + " characters)";
}

string_check non_empty() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        return std::nullopt;
    };
}

string_check identifier(std::size_t max_len) {
    return [max_len](std::string& s) -> std::optional<std::string> {
        if (is_identifier(s, max_len)) return std::nullopt;
        return identifier_rule(max_len) + ", got " + quote(s);
    };
}

string_check one_of(std::vector<std::string> allowed) {
    return [allowed = std::move(allowed)](std::string& s) -> std::optional<std::string> {
        if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return std::nullopt;
        std::string msg = "must be one of " + join(allowed, ", ") + "; got " + quote(s);
        if (auto hint = suggest(s, allowed)) msg += " (did you mean \"" + *hint + "\"?)";
        return msg;
    };
}

string_check no_spaces() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        if (std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }))
            return "must not contain spaces, got " + quote(s);
        return std::nullopt;
    };
}

// "host:port" or "[v6-address]:port"; port 0 asks the OS for a free port.
string_check listen_address() {
    return [](std::string& s) -> std::optional<std::string> {
        const std::string shape = "expected \"host:port\" (e.g. \"0.0.0.0:8080\" or \"[::1]:8080\"), got " + quote(s);
        std::string host, port;
        if (!s.empty() && s[0] == '[') {
            const std::size_t close = s.find(']');
            if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') return shape;
            host = s.substr(1, close - 1);
            port = s.substr(close + 2);
        } else {
            const std::size_t colon = s.rfind(':');
            if (colon == std::string::npos) return shape;
            host = s.substr(0, colon);
            port = s.substr(colon + 1);
            if (host.find(':') != std::string::npos) return shape;  // a bare IPv6 address needs brackets
        }
        if (host.empty() || port.empty() || port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return shape;
        if (std::stoi(port) > 65535) return "port must be between 0 and 65535, got " + port;
        return std::nullopt;
    };
}

string_check sha256_hex() {
    return [](std::string& s) -> std::optional<std::string> {
        const bool hex = std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
        if (s.size() != 64 || !hex)
            return "must be the SHA-256 of the key as 64 hexadecimal characters, got " + std::to_string(s.size()) +
                   " characters" + (hex ? "" : " (not all hexadecimal)");
        for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return std::nullopt;
    };
}

// RFC 6901: "/a/b~1c" → {"a", "b/c"}; nothing when it is not a pointer.
std::optional<std::vector<std::string>> pointer_tokens(const std::string& p) {
    if (p.empty() || p[0] != '/') return std::nullopt;
    std::vector<std::string> out(1);
    for (std::size_t i = 1; i < p.size(); ++i) {
        if (p[i] == '/') {
            out.emplace_back();
        } else if (p[i] == '~') {
            if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
            out.back() += p[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            out.back() += p[i];
        }
    }
    return out;
}

std::optional<std::string> pointer_problem(const std::string& s) {
    if (s.empty() || s[0] != '/')
        return "must be a JSON pointer starting with \"/\" (e.g. \"/device/os\"), got " + quote(s);
    if (!pointer_tokens(s))
        return "invalid JSON pointer " + quote(s) +
               ": \"~\" must be followed by 0 or 1 (\"~0\" is \"~\", \"~1\" is \"/\")";
    return std::nullopt;
}

// A set's key or event time: a top-level member name, or a JSON pointer when it starts with "/".
string_check member_or_pointer() {
    return [](std::string& s) -> std::optional<std::string> {
        if (s.empty()) return "must not be empty";
        if (s[0] == '/') return pointer_problem(s);
        return std::nullopt;
    };
}

namespace {
const char* const duration_rule = "use a whole number and a unit ms, s, m, h or d, e.g. \"24h\"";
}  // namespace

std::optional<std::int64_t> read_duration(const json& v, const std::string& p, const duration_range& range,
                                          diagnostics& d) {
    const std::string& s = v.get_ref<const std::string&>();
    std::int64_t ms = 0;
    if (!parse_duration_ms(s, ms)) {
        d.add(p, "invalid duration " + quote(s) + ": " + duration_rule);
        return std::nullopt;
    }
    if (ms < range.lo_ms || ms > range.hi_ms) {
        d.add(p, std::string("must be between ") + range.lo_text + " and " + range.hi_text + ", got " + quote(s));
        return std::nullopt;
    }
    return ms;
}

}  // namespace sluice::config_detail

namespace sluice {

bool parse_duration_ms(const std::string& text, std::int64_t& out_ms) {
    if (text == "0") {
        out_ms = 0;
        return true;
    }
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    std::size_t i = 0;
    std::int64_t n = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
        const int digit = text[i] - '0';
        if (n > (max - digit) / 10) return false;
        n = n * 10 + digit;
    }
    if (i == 0) return false;
    const std::string_view unit = std::string_view(text).substr(i);
    std::int64_t scale;
    if (unit == "ms")
        scale = 1;
    else if (unit == "s")
        scale = 1000;
    else if (unit == "m")
        scale = 60 * 1000;
    else if (unit == "h")
        scale = 3600 * 1000;
    else if (unit == "d")
        scale = 86400 * 1000;
    else
        return false;
    if (n > max / scale) return false;
    out_ms = n * scale;
    return true;
}

}  // namespace sluice
