#include "framing.hpp"

#include <boost/beast/core/string.hpp>

namespace sluice::serve {

std::string_view framing_error(const request& req) {
    // Beast accepts repeated equal lengths ("5, 5" or two fields); a proxy in front may not
    // read them the same way, so only one plain length is taken.
    const std::size_t cl_count = req.count(http::field::content_length);
    if (cl_count > 1 || (cl_count == 1 && req[http::field::content_length].find(',') != std::string_view::npos))
        return "Content-Length must appear once, with one value";
    const std::size_t te_count = req.count(http::field::transfer_encoding);
    if (te_count == 0) return {};
    if (req.count(http::field::content_length) > 0)
        return "a request may not carry both Content-Length and Transfer-Encoding";
    if (te_count > 1) return "Transfer-Encoding may appear only once";
    if (!boost::beast::iequals(trim_ows(req[http::field::transfer_encoding]), "chunked"))
        return "only Transfer-Encoding: chunked is supported";
    return {};
}

std::string_view method_label(http::verb method) {
    if (method == http::verb::unknown) return "other";
    return http::to_string(method);
}

}  // namespace sluice::serve
