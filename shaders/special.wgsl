
// ln|Γ(x)| and ψ(x) in f32 (compiler/src/lower/emit/expr.rs declares these once per
// kernel that calls either). Below 8 the argument is shifted up — Γ(x + 1) = x·Γ(x),
// ψ(x + 1) = ψ(x) + 1/x — and then Stirling's series (lgamma) or the asymptotic series
// (digamma) takes over; below ½, reflection. lgamma is +inf at its poles (0 and the
// negative integers), digamma NaN.
fn wg_lgamma_shifted(x: f32) -> f32 {
    var z: f32 = x;
    var p: f32 = 1.0;
    for (var k: i32 = 0; k < 8; k = k + 1) {
        if z < 8.0 {
            p = p * z;
            z = z + 1.0;
        }
    }
    let r: f32 = 1.0 / z;
    let r2: f32 = r * r;
    let series: f32 = r * (0.083333333 - r2 * (0.0027777778 - r2 * (0.00079365079 - r2 * 0.00059523810)));
    return (z - 0.5) * log(z) - z + 0.91893853 + series - log(p);
}

fn wg_lgamma(x: f32) -> f32 {
    if x <= 0.0 && floor(x) == x {
        return bitcast<f32>(0x7f800000u);
    }
    if x < 0.5 {
        // |sin(πx)| has period 1: reduce first, exactly, to keep the argument small.
        let s: f32 = abs(sin(3.14159265 * (x - floor(x))));
        return log(3.14159265 / s) - wg_lgamma_shifted(1.0 - x);
    }
    return wg_lgamma_shifted(x);
}

fn wg_digamma(x: f32) -> f32 {
    if x <= 0.0 && floor(x) == x {
        return bitcast<f32>(0x7fc00000u);
    }
    var z: f32 = x;
    var acc: f32 = 0.0;
    if x < 0.5 {
        // tan(πx) has period 1: reduce first, exactly, to keep the argument small.
        acc = -3.14159265 / tan(3.14159265 * (x - floor(x)));
        z = 1.0 - x;
    }
    for (var k: i32 = 0; k < 8; k = k + 1) {
        if z < 8.0 {
            acc = acc - 1.0 / z;
            z = z + 1.0;
        }
    }
    let r: f32 = 1.0 / z;
    let r2: f32 = r * r;
    return acc + log(z) - 0.5 * r - r2 * (0.083333333 - r2 * (0.0083333333 - r2 * 0.0039682540));
}
