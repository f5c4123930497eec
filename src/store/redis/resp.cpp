#include "resp.hpp"

#include <charconv>

namespace sluice {

void append_resp_header(std::string& out, char kind, std::size_t n) {
    char text[24];
    text[0] = kind;
    char* end = std::to_chars(text + 1, text + sizeof text - 2, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(text, end);
}

void append_resp_bulk(std::string& out, std::string_view arg) {
    append_resp_header(out, '$', arg.size());
    out.append(arg);
    out += "\r\n";
}

long parse_resp_reply(std::string_view in, resp_reply& out) {
    const auto line_end = [&in](std::size_t from) { return in.find("\r\n", from); };
    const auto number = [](std::string_view t, long& n) {
        const auto r = std::from_chars(t.data(), t.data() + t.size(), n);
        return r.ec == std::errc{} && r.ptr == t.data() + t.size();
    };
    // One scalar at `pos`: its text, and the position after it (0 incomplete, npos bad).
    const auto scalar = [&](std::size_t pos, std::string_view& text, bool& nil) -> std::size_t {
        if (pos >= in.size()) return 0;
        const std::size_t e = line_end(pos + 1);
        if (e == std::string_view::npos) return 0;
        const std::string_view line = in.substr(pos + 1, e - pos - 1);
        nil = false;
        switch (in[pos]) {
            case '+':
            case '-':
            case ':':
                text = line;
                return e + 2;
            case '$': {
                long len = 0;
                if (!number(line, len) || len < -1) return std::string_view::npos;
                if (len == -1) {
                    nil = true;
                    text = {};
                    return e + 2;
                }
                const std::size_t end = e + 2 + static_cast<std::size_t>(len);
                if (in.size() < end + 2) return 0;
                text = in.substr(e + 2, static_cast<std::size_t>(len));
                return end + 2;
            }
            default:
                return std::string_view::npos;
        }
    };
    if (in.empty()) return 0;
    if (in[0] != '*') {
        bool nil = false;
        const std::size_t next = scalar(0, out.text, nil);
        if (next == 0) return 0;
        if (next == std::string_view::npos) return -1;
        out.type = nil ? resp_reply::kind::nil
                 : in[0] == '+' ? resp_reply::kind::status
                 : in[0] == '-' ? resp_reply::kind::error
                 : in[0] == ':' ? resp_reply::kind::integer
                                : resp_reply::kind::bulk;
        return static_cast<long>(next);
    }
    const std::size_t e = line_end(1);
    if (e == std::string_view::npos) return 0;
    long count = 0;
    if (!number(in.substr(1, e - 1), count) || count < -1) return -1;
    out.elements.clear();
    std::size_t pos = e + 2;
    out.type = count == -1 ? resp_reply::kind::nil : resp_reply::kind::array;
    for (long i = 0; i < count; ++i) {
        std::string_view text;
        bool nil = false;
        const std::size_t next = scalar(pos, text, nil);
        if (next == 0) return 0;
        if (next == std::string_view::npos) return -1;
        out.elements.push_back(text);
        pos = next;
    }
    return static_cast<long>(pos);
}

}  // namespace sluice
