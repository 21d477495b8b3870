#include "relevance_reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tkt {
namespace {

std::vector<double> unit(const double* row, int64_t channels) {
    double sum = 0.0;
    for (int64_t c = 0; c < channels; ++c) sum += row[c] * row[c];
    const double norm = std::max(std::sqrt(sum), 1e-12);
    std::vector<double> u(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) u[static_cast<size_t>(c)] = row[c] / norm;
    return u;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0.0;
    for (size_t c = 0; c < a.size(); ++c) s += a[c] * b[c];
    return s;
}

}  // namespace

std::vector<double> reference_relevance(const RelevanceInputs& in) {
    std::vector<double> out(static_cast<size_t>(in.batch * in.tokens), 0.0);
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? in.tokens : in.lengths[static_cast<size_t>(b)];
        const int64_t text_length = in.text_lengths.empty() ? in.text_tokens : in.text_lengths[static_cast<size_t>(b)];
        std::vector<std::vector<double>> text;
        for (int64_t t = 0; t < text_length; ++t)
            text.push_back(unit(&in.text[static_cast<size_t>((b * in.text_tokens + t) * in.channels)], in.channels));
        std::vector<double> score(static_cast<size_t>(length));
        for (int64_t i = 0; i < length; ++i) {
            const std::vector<double> u = unit(&in.visual[static_cast<size_t>((b * in.tokens + i) * in.channels)], in.channels);
            double sum = 0.0;
            for (const auto& q : text) sum += dot(u, q);
            const double mean = sum / static_cast<double>(text_length);  // NaN when T_b = 0
            score[static_cast<size_t>(i)] = in.negate ? -mean : mean;
        }
        double lo = std::numeric_limits<double>::quiet_NaN(), hi = lo;
        for (double s : score) {
            if (std::isnan(s)) continue;
            lo = std::isnan(lo) ? s : std::min(lo, s);
            hi = std::isnan(hi) ? s : std::max(hi, s);
        }
        const double range = hi - lo;
        for (int64_t i = 0; i < length; ++i)
            out[static_cast<size_t>(b * in.tokens + i)] =
                range > 0.0 ? (score[static_cast<size_t>(i)] - lo + 1e-6) / range : 1.0;
    }
    return out;
}

DppResult reference_dpp(const DppInputs& in) {
    DppResult result;
    const double alpha = in.theta / (2.0 * (1.0 - in.theta));
    for (int64_t b = 0; b < in.batch; ++b) {
        const int64_t length = in.lengths.empty() ? in.tokens : in.lengths[static_cast<size_t>(b)];
        const int64_t count = std::min(in.item_k.empty() ? in.k : in.item_k[static_cast<size_t>(b)], length);
        std::vector<std::vector<double>> u;
        std::vector<double> w(static_cast<size_t>(length), 1.0);
        for (int64_t i = 0; i < length; ++i) {
            u.push_back(unit(&in.x[static_cast<size_t>((b * in.tokens + i) * in.channels)], in.channels));
            if (!in.relevance.empty()) {
                const double r = in.relevance[static_cast<size_t>(b * in.tokens + i)];
                w[static_cast<size_t>(i)] = in.exp_weighting ? std::exp(alpha * r) : r;
            }
        }
        auto kernel = [&](int64_t i, int64_t j) { return w[static_cast<size_t>(i)] * dot(u[static_cast<size_t>(i)], u[static_cast<size_t>(j)]) * w[static_cast<size_t>(j)]; };
        std::vector<double> residual(static_cast<size_t>(length));
        double scale = 0.0;
        for (int64_t i = 0; i < length; ++i) {
            // s_ii is 1 for a nonzero row, 0 for a zero row, NaN for a NaN row.
            const double self = dot(u[static_cast<size_t>(i)], u[static_cast<size_t>(i)]);
            residual[static_cast<size_t>(i)] = w[static_cast<size_t>(i)] * (self > 0.0 ? 1.0 : self) * w[static_cast<size_t>(i)];
            if (std::isfinite(residual[static_cast<size_t>(i)])) scale = std::max(scale, std::fabs(residual[static_cast<size_t>(i)]));
        }
        scale = std::max(scale, 1e-30);
        std::vector<bool> chosen(static_cast<size_t>(length), false);
        std::vector<std::vector<double>> rows;  // the Cholesky rows c_t
        std::vector<int64_t> order;
        // Ranks NaN below every number, the lower index on ties (the scan goes up).
        auto better = [](double x1, double x2) { return std::isnan(x2) ? !std::isnan(x1) : (!std::isnan(x1) && x1 > x2); };
        for (int64_t t = 0; t < count; ++t) {
            int64_t j = -1;
            for (int64_t n = 0; n < length; ++n)
                if (!chosen[static_cast<size_t>(n)] && (j < 0 || better(residual[static_cast<size_t>(n)], residual[static_cast<size_t>(j)]))) j = n;
            // Margin: the chosen residual against the best other candidate (both numbers).
            for (int64_t n = 0; n < length; ++n) {
                if (n == j || chosen[static_cast<size_t>(n)]) continue;
                const double a = residual[static_cast<size_t>(j)], c = residual[static_cast<size_t>(n)];
                if (std::isnan(a) || std::isnan(c) || a == c) continue;  // exact ties: to the lower index
                result.margin = std::min(result.margin, std::fabs(a - c) / scale);
            }
            chosen[static_cast<size_t>(j)] = true;
            order.push_back(j);
            const double d = residual[static_cast<size_t>(j)];
            std::vector<double> e(static_cast<size_t>(length), 0.0);
            if (d > 0.0) {
                for (int64_t n = 0; n < length; ++n) {
                    if (chosen[static_cast<size_t>(n)]) continue;
                    double projection = 0.0;
                    for (const auto& c : rows) projection += c[static_cast<size_t>(j)] * c[static_cast<size_t>(n)];
                    e[static_cast<size_t>(n)] = (kernel(j, n) - projection) / std::sqrt(d);
                    residual[static_cast<size_t>(n)] -= e[static_cast<size_t>(n)] * e[static_cast<size_t>(n)];
                }
            }
            rows.push_back(e);
        }
        result.order.push_back(order);
    }
    return result;
}

}  // namespace tkt
