#pragma once
// Request framing rules checked once the header is in, before any body is read: the shapes
// that let two HTTP parties disagree on where a body ends (request smuggling) are refused.
// Free functions, called from any thread.

#include <string_view>

#include "response.hpp"

namespace sluice::serve {

/// Empty when the header's framing is acceptable, else why not (for a 400's message): Content-Length
/// repeated or a list, both Content-Length and Transfer-Encoding, Transfer-Encoding more than
/// once, or a transfer coding other than "chunked".
std::string_view framing_error(const request& req);

/// The method as a metric label: the verb's name, or "other" for methods Beast does not know
/// (clients must not be able to create label values at will).
std::string_view method_label(http::verb method);

}  // namespace sluice::serve
