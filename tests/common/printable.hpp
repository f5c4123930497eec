#pragma once
// Bytes as readable text for test and fuzz messages: printable ASCII as is, everything else
// (and the backslash) as \xNN.

#include <string>

namespace sluice::testing_support {

inline std::string printable(const std::string& s) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\\') {
            out += c;
        } else {
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 0xF];
        }
    }
    return out;
}

}  // namespace sluice::testing_support
