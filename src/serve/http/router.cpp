#include "router.hpp"

#include <stdexcept>

namespace sluice::serve {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Splits "/a/b/c" into {"a","b","c"}; "/" gives {""}. The leading '/' must be present.
std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    std::size_t pos = 1;
    while (true) {
        const std::size_t slash = path.find('/', pos);
        if (slash == std::string_view::npos) {
            out.push_back(path.substr(pos));
            return out;
        }
        out.push_back(path.substr(pos, slash - pos));
        pos = slash + 1;
    }
}

}  // namespace

std::optional<std::string> url_decode(std::string_view in, bool plus_as_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return std::nullopt;
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::optional<string_pairs> parse_query(std::string_view query) {
    string_pairs out;
    std::size_t pos = 0;
    while (pos <= query.size()) {
        std::size_t amp = query.find('&', pos);
        if (amp == std::string_view::npos) amp = query.size();
        const std::string_view part = query.substr(pos, amp - pos);
        if (!part.empty()) {
            const std::size_t eq = part.find('=');
            auto name = url_decode(part.substr(0, eq), true);
            auto val = eq == std::string_view::npos ? std::optional<std::string>{std::string{}}
                                                    : url_decode(part.substr(eq + 1), true);
            if (!name || !val) return std::nullopt;
            out.emplace_back(std::move(*name), std::move(*val));
        }
        pos = amp + 1;
    }
    return out;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
    const std::size_t q = target.find('?');
    if (q == std::string_view::npos) return {target, {}};
    return {target.substr(0, q), target.substr(q + 1)};
}

const std::string& request_context::param(std::string_view name) const {
    static const std::string empty;
    for (const auto& [k, v] : params)
        if (k == name) return v;
    return empty;
}

const std::string* request_context::query_value(std::string_view name) const {
    for (const auto& [k, v] : query)
        if (k == name) return &v;
    return nullptr;
}

void router::add(http::verb method, std::string_view pattern, std::string scope, handler fn) {
    if (pattern.empty() || pattern.front() != '/') throw std::invalid_argument("route pattern must start with '/'");
    route r;
    r.method = method;
    r.pattern = std::string(pattern);
    r.scope = std::move(scope);
    r.fn = std::move(fn);
    for (std::string_view seg : split_path(pattern)) {
        segment s;
        if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
            s.is_param = true;
            s.text = std::string(seg.substr(1, seg.size() - 2));
        } else {
            if (seg.find_first_of("{}") != std::string_view::npos)
                throw std::invalid_argument("malformed route pattern: " + r.pattern);
            s.text = std::string(seg);
        }
        r.segments.push_back(std::move(s));
    }
    routes_.push_back(std::move(r));
}

void router::add_streamed(http::verb method, std::string_view pattern, std::string scope, stream_handler fn) {
    // dispatcher::streamed looks only at POST requests.
    if (method != http::verb::post) throw std::invalid_argument("a streamed route takes POST: " + std::string(pattern));
    add(method, pattern, std::move(scope), nullptr);
    routes_.back().stream_fn = std::move(fn);
}

router::match router::find(http::verb method, std::string_view path) const {
    match m;
    if (path.empty() || path.front() != '/') {
        m.result = match::outcome::bad_path;
        return m;
    }
    std::vector<std::string> segs;
    for (std::string_view raw : split_path(path)) {
        auto decoded = url_decode(raw, false);
        if (!decoded) {
            m.result = match::outcome::bad_path;
            return m;
        }
        segs.push_back(std::move(*decoded));
    }

    std::vector<http::verb> allowed;
    for (const route& r : routes_) {
        if (r.segments.size() != segs.size()) continue;
        bool ok = true;
        for (std::size_t i = 0; i < segs.size() && ok; ++i) {
            const segment& s = r.segments[i];
            ok = s.is_param ? !segs[i].empty() : s.text == segs[i];
        }
        if (!ok) continue;
        if (r.scope.empty()) m.public_path = true;
        if (r.method == method && m.matched == nullptr) {
            m.matched = &r;
            for (std::size_t i = 0; i < segs.size(); ++i)
                if (r.segments[i].is_param) m.params.emplace_back(r.segments[i].text, segs[i]);
        }
        bool seen = false;
        for (http::verb v : allowed) seen = seen || v == r.method;
        if (!seen) allowed.push_back(r.method);
    }
    if (m.matched != nullptr) {
        m.result = match::outcome::found;
        return m;
    }
    if (allowed.empty()) {
        m.result = match::outcome::not_found;
        return m;
    }
    m.result = match::outcome::method_not_allowed;
    for (http::verb v : allowed) {
        if (!m.allow.empty()) m.allow += ", ";
        m.allow += std::string(http::to_string(v));
    }
    return m;
}

}  // namespace sluice::serve
