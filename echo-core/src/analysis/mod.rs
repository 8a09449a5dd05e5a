//! Brand analysis: extraction of brand mentions from answers, metrics and statistics.
//! Pure functions, no I/O.
