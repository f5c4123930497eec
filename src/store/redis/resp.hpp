#pragma once
// RESP, Redis's wire protocol: what the cache writer and the io-thread reader write and read.
// Private to store/redis.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

/// RESP's "<kind><n>\r\n": the argument count of a command ('*') or the length of a bulk string ('$').
void append_resp_header(std::string& out, char kind, std::size_t n);

/// One RESP bulk string, $<len>\r\n<bytes>\r\n, the form of each argument of a command (which
/// starts with *<argument count>\r\n).
void append_resp_bulk(std::string& out, std::string_view arg);

/// One Redis (RESP) reply, pointing into the input it was parsed from. Only the shapes the
/// reads get: status, error, integer, bulk string, nil, and arrays of those.
struct resp_reply {
    enum class kind { status, error, integer, bulk, nil, array } type = kind::nil;
    std::string_view text;                  // status, error, integer or bulk
    std::vector<std::string_view> elements;  // array (nil elements as empty strings)
};

/// Parses one reply at the start of `in`: the bytes it took, 0 when it is not complete yet, or
/// -1 when the input is not RESP the reads can get. No allocation once `out.elements` has grown.
long parse_resp_reply(std::string_view in, resp_reply& out);

}  // namespace sluice
