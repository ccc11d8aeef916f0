//! The words of the web pages around the reference texts, in English and Indonesian: headings,
//! form labels, error pages, and short names for the facts (who acts, whether retrying helps,
//! the subject of an enhanced code). The labels of the entries themselves come from
//! `petrel_catalogue::explain::labels`.

use petrel_catalogue::Lang;

/// The page words of one language.
#[derive(Debug, Clone, Copy)]
pub struct Words {
    pub site: &'static str,
    pub intro: &'static str,
    pub language: &'static str,
    pub search: &'static str,
    pub search_label: &'static str,
    pub search_hint: &'static str,
    pub results_for: &'static str,
    pub no_results: &'static str,
    pub type_something: &'static str,
    pub basic_codes: &'static str,
    pub enhanced_codes: &'static str,
    pub no_codes: &'static str,
    pub all_codes: &'static str,
    pub compare: &'static str,
    pub with: &'static str,
    pub compare_hint: &'static str,
    pub compare_title: &'static str,
    pub first_code: &'static str,
    pub second_code: &'static str,
    pub full_entries: &'static str,
    pub what_to_do: &'static str,
    pub and: &'static str,
    pub reply_line: &'static str,
    pub reply_parts: &'static str,
    pub warning: &'static str,
    pub nearest: &'static str,
    pub not_found: &'static str,
    pub not_found_text: &'static str,
    pub broken: &'static str,
    pub footer: &'static str,
    pub read_bounce: &'static str,
}

/// The words of `lang`.
pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &ENGLISH,
        Lang::Id => &INDONESIAN,
    }
}

static ENGLISH: Words = Words {
    site: "SMTP reply codes",
    intro: "What each SMTP reply code and enhanced status code means, when you see it, and what to do about it. Type a code or paste a whole reply line into the search box.",
    language: "Language",
    search: "Search",
    search_label: "Code, reply line or word",
    search_hint: "556, 5.1.10 or 550 5.7.1 Relaying denied",
    results_for: "Search results for",
    no_results: "No code or title matches.",
    type_something: "Type a code (556, 5.1.10), a whole reply line or a word from a title.",
    basic_codes: "Basic reply codes",
    enhanced_codes: "Enhanced status codes",
    no_codes: "The reference has no codes in this group yet.",
    all_codes: "All codes",
    compare: "Compare",
    with: "with",
    compare_hint: "for example 554",
    compare_title: "Compare two codes",
    first_code: "First code",
    second_code: "Second code",
    full_entries: "Both entries in full",
    what_to_do: "What to do",
    and: "and",
    reply_line: "Reply line",
    reply_parts: "A reply line carries a basic reply code and, often, an enhanced status code. Here is what each part says.",
    warning: "Warning",
    nearest: "Nearest known codes",
    not_found: "Not found",
    not_found_text: "There is no page here.",
    broken: "The reference does not load",
    footer: "petrel reply-code reference · sources: RFC 5321, RFC 3463 and the IANA registry of enhanced status codes",
    read_bounce: "Read a bounce",
};

static INDONESIAN: Words = Words {
    site: "Kode balasan SMTP",
    intro: "Arti setiap kode balasan SMTP dan kode status lanjutan (enhanced status code), kapan kode itu muncul, dan apa yang perlu dilakukan. Ketik sebuah kode atau tempel satu baris balasan utuh ke kotak pencarian.",
    language: "Bahasa",
    search: "Cari",
    search_label: "Kode, baris balasan, atau kata",
    search_hint: "556, 5.1.10 atau 550 5.7.1 Relaying denied",
    results_for: "Hasil pencarian untuk",
    no_results: "Tidak ada kode atau judul yang cocok.",
    type_something: "Ketik sebuah kode (556, 5.1.10), satu baris balasan utuh, atau kata dari sebuah judul.",
    basic_codes: "Kode balasan dasar",
    enhanced_codes: "Kode status lanjutan",
    no_codes: "Referensi belum berisi kode dalam kelompok ini.",
    all_codes: "Semua kode",
    compare: "Bandingkan",
    with: "dengan",
    compare_hint: "misalnya 554",
    compare_title: "Bandingkan dua kode",
    first_code: "Kode pertama",
    second_code: "Kode kedua",
    full_entries: "Kedua entri selengkapnya",
    what_to_do: "Yang perlu dilakukan",
    and: "dan",
    reply_line: "Baris balasan",
    reply_parts: "Satu baris balasan membawa kode balasan dasar dan sering kali kode status lanjutan. Berikut arti masing-masing bagian.",
    warning: "Peringatan",
    nearest: "Kode terdekat yang dikenal",
    not_found: "Tidak ditemukan",
    not_found_text: "Tidak ada halaman di sini.",
    broken: "Referensi tidak dapat dimuat",
    footer: "Referensi kode balasan petrel · sumber: RFC 5321, RFC 3463, dan registri IANA untuk kode status lanjutan",
    read_bounce: "Membaca pesan pentalan",
};

/// A short name for who must act (`facts.actor`); the token itself when unknown.
pub fn actor(lang: Lang, actor: &str) -> String {
    let name = match (lang, actor) {
        (Lang::En, "sender") => "the sender",
        (Lang::En, "sender-admin") => "the sender's administrator",
        (Lang::En, "recipient") => "the recipient",
        (Lang::En, "recipient-admin") => "the recipient's administrator",
        (Lang::En, "client") => "the client software",
        (Lang::En, "nobody") => "nobody: wait",
        (Lang::Id, "sender") => "pengirim",
        (Lang::Id, "sender-admin") => "administrator pengirim",
        (Lang::Id, "recipient") => "penerima",
        (Lang::Id, "recipient-admin") => "administrator penerima",
        (Lang::Id, "client") => "perangkat lunak klien",
        (Lang::Id, "nobody") => "tidak ada: tunggu",
        _ => actor,
    };
    name.to_owned()
}

/// A short answer to "does retrying help" (`facts.retry`); the token itself when unknown.
pub fn retry(lang: Lang, retry: &str) -> String {
    let answer = match (lang, retry) {
        (Lang::En, "yes") => "yes",
        (Lang::En, "no") => "no",
        (Lang::En, "after-fix") => "only after a fix",
        (Lang::Id, "yes") => "ya",
        (Lang::Id, "no") => "tidak",
        (Lang::Id, "after-fix") => "hanya setelah diperbaiki",
        _ => retry,
    };
    answer.to_owned()
}

/// The subject of an enhanced status code (its middle number), per RFC 3463.
pub fn subject(lang: Lang, subject: &str) -> String {
    let name = match (lang, subject) {
        (Lang::En, "0") => "Other or undefined status",
        (Lang::En, "1") => "Addressing status",
        (Lang::En, "2") => "Mailbox status",
        (Lang::En, "3") => "Mail system status",
        (Lang::En, "4") => "Network and routing status",
        (Lang::En, "5") => "Mail delivery protocol status",
        (Lang::En, "6") => "Message content or media status",
        (Lang::En, "7") => "Security or policy status",
        (Lang::Id, "0") => "Status lain atau tidak terdefinisi",
        (Lang::Id, "1") => "Status alamat",
        (Lang::Id, "2") => "Status kotak surat",
        (Lang::Id, "3") => "Status sistem surel",
        (Lang::Id, "4") => "Status jaringan dan perutean",
        (Lang::Id, "5") => "Status protokol pengiriman surel",
        (Lang::Id, "6") => "Status isi pesan atau media",
        (Lang::Id, "7") => "Status keamanan atau kebijakan",
        (Lang::En, _) => "Other subjects",
        (Lang::Id, _) => "Subjek lain",
    };
    format!("X.{subject} · {name}")
}
