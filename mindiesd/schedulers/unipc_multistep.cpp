#include "mindiesd/schedulers/unipc_multistep.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "mindiesd/core/error.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"

namespace mindiesd::schedulers {

namespace {

constexpr const char* kWhat = "UniPCMultistepScheduler";

// PyTorch's result dtype of a binary op on two float tensors: f32 when either is f32 (the
// latents are f32 and the model's prediction bf16 in WanPipeline), else the shared 16-bit type.
DType result_dtype(DType a, DType b) { return a == b ? a : DType::f32; }

// An f32 value as a tensor of dtype `t` would hold it.
float round_to(float v, DType t) {
  return t == DType::f32 ? v : ops::full({1}, v, DType::f32).to(t).to_vector()[0];
}

// `c * t` with c a 0-d f32 tensor: PyTorch casts c to t's dtype (the dimensioned operand wins
// the promotion), multiplies in f32 and rounds once to t's dtype. (Checked against diffusers:
// with a bf16 model output, sigma is rounded to bf16 before x0 = x - sigma * v.)
Tensor scale(const Tensor& t, float c) { return ops::affine(t, round_to(c, t.dtype()), 0.0f); }
// `t / c`: a true division (not a product with 1 / c) by c in t's dtype, rounded once.
Tensor divide(const Tensor& t, float c) {
  const Tensor q = ops::div(t.to(DType::f32),
                                ops::full({1}, round_to(c, t.dtype()), DType::f32, t.device()));
  return q.dtype() == t.dtype() ? q : q.to(t.dtype());
}
// a - b and a + b with PyTorch's promotion, each computed in f32 and rounded once.
Tensor sub(const Tensor& a, const Tensor& b) {
  const DType r = result_dtype(a.dtype(), b.dtype());
  return ops::sub(a.to(r), b.to(r));
}
Tensor add(const Tensor& a, const Tensor& b) {
  const DType r = result_dtype(a.dtype(), b.dtype());
  return ops::add(a.to(r), b.to(r));
}

// torch.linalg.solve for the 2x2 / 3x3 systems of UniPC, in f32: LU with partial pivoting as
// LAPACK's sgetrf/sgetrs do it (column scaled by the pivot's reciprocal, then the triangular
// solves).
std::vector<float> solve(std::vector<std::vector<float>> a, std::vector<float> b) {
  const size_t n = b.size();
  for (size_t k = 0; k < n; ++k) {
    size_t p = k;
    for (size_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i][k]) > std::fabs(a[p][k])) p = i;
    MINDIESD_CHECK(a[p][k] != 0.0f, InvalidArgument, kWhat,
                   ": singular solver system (two steps with the same sigma?)");
    std::swap(a[p], a[k]);
    std::swap(b[p], b[k]);
    const float r = 1.0f / a[k][k];
    for (size_t i = k + 1; i < n; ++i) {
      a[i][k] *= r;
      for (size_t j = k + 1; j < n; ++j) {
        const float prod = a[i][k] * a[k][j];
        a[i][j] -= prod;
      }
    }
  }
  for (size_t i = 1; i < n; ++i)
    for (size_t j = 0; j < i; ++j) {
      const float prod = a[i][j] * b[j];
      b[i] -= prod;
    }
  for (size_t i = n; i-- > 0;) {
    for (size_t j = i + 1; j < n; ++j) {
      const float prod = a[i][j] * b[j];
      b[i] -= prod;
    }
    b[i] /= a[i][i];
  }
  return b;
}

// log(alpha) - log(sigma) of a flow sigma (alpha = 1 - sigma), in f32.
float lambda_of(float sigma) { return std::log(1.0f - sigma) - std::log(sigma); }

// The scalar side of one UniP / UniC update (multistep_uni_{p,c}_bh_update up to the tensors).
struct Update {
  float c_x;       // sigma_t / sigma_s0
  float c_m0;      // alpha_t * h_phi_1
  float c_res;     // alpha_t * B_h
  std::vector<float> rks;  // (lambda_si - lambda_s0) / h for the older outputs, then 1
  std::vector<float> b;    // the order conditions' right-hand side
  std::vector<std::vector<float>> r;  // R[i][k] = rks[k]^i
};

// sigma_t: the target sigma; sigma_s0: the current one; older: the sigmas of the older model
// outputs, newest first. bh1: B(h) = h, bh2: B(h) = e^h - 1 (with h negated for x0 prediction).
Update make_update(float sigma_t, float sigma_s0, const std::vector<float>& older, int64_t order,
                   bool bh1) {
  Update u;
  const float alpha_t = 1.0f - sigma_t;
  const float lambda_t = lambda_of(sigma_t), lambda_s0 = lambda_of(sigma_s0);
  const float h = lambda_t - lambda_s0;
  for (float s : older) u.rks.push_back((lambda_of(s) - lambda_s0) / h);
  u.rks.push_back(1.0f);
  const float hh = -h;
  const float h_phi_1 = std::expm1(hh);
  float h_phi_k = h_phi_1 / hh - 1.0f;
  int64_t factorial = 1;
  const float b_h = bh1 ? hh : std::expm1(hh);
  for (int64_t i = 1; i <= order; ++i) {
    std::vector<float> row;
    for (float rk : u.rks) row.push_back(i == 1 ? 1.0f : i == 2 ? rk : rk * rk);
    u.r.push_back(std::move(row));
    u.b.push_back(h_phi_k * static_cast<float>(factorial) / b_h);
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - static_cast<float>(1.0 / static_cast<double>(factorial));
  }
  u.c_x = sigma_t / sigma_s0;
  u.c_m0 = alpha_t * h_phi_1;
  u.c_res = alpha_t * b_h;
  return u;
}

// sum_k rhos[k] * d[k] (torch.einsum "k,bkc...->bc..."): one product for a single term, else
// the sum in f32 rounded once, as the batched product computes it.
Tensor weighted_sum(const std::vector<float>& rhos, const std::vector<Tensor>& d) {
  if (d.size() == 1) return scale(d[0], rhos[0]);
  Tensor acc = scale(d[0].to(DType::f32), rhos[0]);
  for (size_t k = 1; k < d.size(); ++k) acc = ops::add(acc, scale(d[k].to(DType::f32), rhos[k]));
  return acc.to(d[0].dtype());
}

}  // namespace

UniPCMultistepScheduler::UniPCMultistepScheduler(io::UniPCMultistepSchedulerConfig config)
    : config_(std::move(config)) {
  const io::UniPCMultistepSchedulerConfig& c = config_;
  auto refuse = [](bool bad, const char* field, const char* why) {
    MINDIESD_CHECK(!bad, Unsupported, kWhat, ": ", field, " ", why,
                   " (this port covers the flow-prediction mode of Wan2.1)");
  };
  refuse(!c.use_flow_sigmas, "use_flow_sigmas", "false");
  refuse(c.prediction_type != "flow_prediction", "prediction_type", "other than flow_prediction");
  refuse(!c.predict_x0, "predict_x0", "false");
  refuse(c.has_solver_p, "solver_p", "given");
  refuse(c.thresholding, "thresholding", "true");
  refuse(c.use_karras_sigmas || c.use_exponential_sigmas || c.use_beta_sigmas,
         "use_karras/exponential/beta_sigmas", "true");
}

UniPCMultistepScheduler UniPCMultistepScheduler::load(const io::Component& component) {
  io::ConfigReader reader = component.config_reader();
  return UniPCMultistepScheduler(io::UniPCMultistepSchedulerConfig::read(reader));
}

void UniPCMultistepScheduler::set_timesteps(int64_t num_inference_steps,
                                            std::optional<std::vector<double>> sigmas,
                                            std::optional<double> mu) {
  const io::UniPCMultistepSchedulerConfig& c = config_;
  const auto t_train = static_cast<double>(c.num_train_timesteps);
  std::vector<double> s;
  if (sigmas) {
    MINDIESD_CHECK(!sigmas->empty(), InvalidArgument, kWhat, ": set_timesteps with no sigmas");
    s = *sigmas;
  } else {
    MINDIESD_CHECK(num_inference_steps >= 1 && num_inference_steps <= c.num_train_timesteps,
                   InvalidArgument, kWhat, ": num_inference_steps ", num_inference_steps,
                   " outside [1, ", c.num_train_timesteps, "]");
    // np.linspace(1, 1 / T, n + 1)[:-1]: arange(n + 1) * step + 1, the endpoint dropped.
    const auto n = static_cast<double>(num_inference_steps);
    const double step = (1.0 / t_train - 1.0) / n;
    for (int64_t i = 0; i < num_inference_steps; ++i) s.push_back(static_cast<double>(i) * step + 1.0);
  }
  for (double v : s)
    MINDIESD_CHECK(v > 0.0 && v <= 1.0, InvalidArgument, kWhat, ": sigma ", v,
                   " outside (0, 1]");
  if (c.use_dynamic_shifting) {
    MINDIESD_CHECK(mu.has_value(), InvalidArgument, kWhat,
                   ": mu is required when use_dynamic_shifting is true");
    for (double& v : s) {
      v = c.time_shift_type == "exponential" ? std::exp(*mu) / (std::exp(*mu) + (1.0 / v - 1.0))
                                             : *mu / (*mu + (1.0 / v - 1.0));
    }
  } else {
    for (double& v : s) v = c.flow_shift * v / (1.0 + (c.flow_shift - 1.0) * v);
  }
  if (c.shift_terminal) {
    const double scale_factor = (1.0 - s.back()) / (1.0 - *c.shift_terminal);
    for (double& v : s) v = 1.0 - (1.0 - v) / scale_factor;
  }
  // Keeps log(1 - sigma) finite in the first updates.
  if (std::fabs(s[0] - 1.0) < 1e-6) s[0] -= 1e-6;
  timesteps_.clear();
  sigmas_.clear();
  for (double v : s) {
    timesteps_.push_back(static_cast<int64_t>(v * t_train));  // torch's int64 cast truncates
    sigmas_.push_back(static_cast<float>(v));
  }
  sigmas_.push_back(c.final_sigmas_type == "zero" ? 0.0f : static_cast<float>(s.back()));
  model_outputs_.assign(static_cast<size_t>(c.solver_order), Tensor());
  last_sample_ = Tensor();
  lower_order_nums_ = 0;
  this_order_ = 0;
  step_index_ = 0;
}

Tensor UniPCMultistepScheduler::step(const Tensor& model_output, const Tensor& sample) {
  const io::UniPCMultistepSchedulerConfig& c = config_;
  const int64_t n = num_inference_steps(), i = step_index_;
  MINDIESD_CHECK(n > 0 && i < n, InvalidArgument, kWhat, ": step ", i, " of ", n,
                 " (call set_timesteps first; every step has been taken)");
  MINDIESD_CHECK(model_output.shape() == sample.shape(), InvalidArgument, kWhat,
                 ": model_output ", model_output.shape().str(), " and sample ",
                 sample.shape().str(), " differ");
  auto sigma = [&](int64_t k) { return sigmas_[static_cast<size_t>(k)]; };
  const bool bh1 = c.solver_type == "bh1";
  const size_t last = model_outputs_.size() - 1;

  // convert_model_output: x0 = x - sigma * v (the product in the model output's dtype).
  const Tensor x0 = sub(sample, scale(model_output, sigma(i)));

  Tensor x = sample;
  const bool disabled = std::find(c.disable_corrector.begin(), c.disable_corrector.end(), i - 1) !=
                        c.disable_corrector.end();
  if (i > 0 && !disabled && last_sample_.defined()) {
    // UniC: corrects the sample the last predictor produced, with this step's x0.
    std::vector<float> older;
    std::vector<Tensor> d1;
    const Tensor& m0 = model_outputs_[last];
    for (int64_t k = 1; k < this_order_; ++k) older.push_back(sigma(i - (k + 1)));
    const Update u = make_update(sigma(i), sigma(i - 1), older, this_order_, bh1);
    for (int64_t k = 1; k < this_order_; ++k)
      d1.push_back(divide(sub(model_outputs_[last - static_cast<size_t>(k)], m0),
                          u.rks[static_cast<size_t>(k - 1)]));
    const DType xt = last_sample_.dtype();
    std::vector<float> rhos = this_order_ == 1 ? std::vector<float>{0.5f} : solve(u.r, u.b);
    for (float& r : rhos) r = round_to(r, xt);
    const Tensor base = sub(scale(last_sample_, u.c_x), scale(m0, u.c_m0));
    Tensor inner = scale(sub(x0, m0), rhos.back());
    if (!d1.empty()) inner = add(weighted_sum(rhos, d1), inner);
    x = sub(base, scale(inner, u.c_res)).to(xt);
  }

  for (size_t k = 0; k < last; ++k) model_outputs_[k] = model_outputs_[k + 1];
  model_outputs_[last] = x0;
  const int64_t order = c.lower_order_final ? std::min(c.solver_order, n - i) : c.solver_order;
  this_order_ = std::min(order, lower_order_nums_ + 1);
  last_sample_ = x;

  if (sigma(i + 1) == sigma(i)) {
    // A zero-length step (final_sigmas_type "sigma_min" repeats the last sigma) is the identity.
    // diffusers computes it through h = 0: exact for a first-order update, but a higher order
    // divides by h and returns NaN (lower_order_final false); here it is x for every order.
    if (lower_order_nums_ < c.solver_order) ++lower_order_nums_;
    ++step_index_;
    return x.clone();
  }

  // UniP: the multistep prediction of the next sample from the x0 history.
  std::vector<float> older;
  std::vector<Tensor> d1;
  const Tensor& m0 = model_outputs_[last];
  for (int64_t k = 1; k < this_order_; ++k) older.push_back(sigma(i - k));
  const Update u = make_update(sigma(i + 1), sigma(i), older, this_order_, bh1);
  for (int64_t k = 1; k < this_order_; ++k)
    d1.push_back(divide(sub(model_outputs_[last - static_cast<size_t>(k)], m0),
                        u.rks[static_cast<size_t>(k - 1)]));
  Tensor prev = sub(scale(x, u.c_x), scale(m0, u.c_m0));
  if (!d1.empty()) {
    std::vector<float> rhos{0.5f};  // diffusers' fixed second-order weight
    if (this_order_ > 2) {  // R[:-1, :-1] rhos = b[:-1]
      std::vector<std::vector<float>> r;
      for (int64_t row = 0; row + 1 < this_order_; ++row)
        r.emplace_back(u.r[static_cast<size_t>(row)].begin(), u.r[static_cast<size_t>(row)].end() - 1);
      rhos = solve(r, std::vector<float>(u.b.begin(), u.b.end() - 1));
    }
    for (float& r : rhos) r = round_to(r, x.dtype());
    prev = sub(prev, scale(weighted_sum(rhos, d1), u.c_res));
  }
  if (lower_order_nums_ < c.solver_order) ++lower_order_nums_;
  ++step_index_;
  return prev.to(x.dtype());
}

}  // namespace mindiesd::schedulers
