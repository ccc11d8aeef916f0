//! Codes the reference has no entry for, explained from their parts (issue 17, item 1): an
//! enhanced code `class.subject.detail` whose subject.detail is registered in another class
//! (Microsoft's `2.6.0`, `5.1.5`) takes the registered meaning with its own class; a detail
//! outside the registry (`5.7.606`) is explained from its class and subject and said to be
//! outside the IANA registry; a basic code outside the RFCs (`559`) from its two first digits
//! (RFC 5321 §4.2.1). Never an accusation: providers add their own details and classes.
//!
//! Pure functions of the catalogue; never panic.

use crate::{Catalogue, Lang};

/// An explanation built from the parts of a code the reference has no entry for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The code as asked.
    pub code: String,
    /// positive | intermediate | transient | permanent.
    pub class: &'static str,
    /// What the parts say, in the asked language.
    pub title: String,
    /// The explanation, in the asked language.
    pub meaning: String,
    /// The registered codes it was explained from (the same subject.detail in other classes,
    /// or the subject's X.Y.0 codes), for "see also".
    pub registered: Vec<String>,
    /// Whether the detail number is in the IANA registry at all (for some class).
    pub is_registered_detail: bool,
}

/// The class a code's first digit names.
pub fn class_of(code: &str) -> &'static str {
    match code.as_bytes().first() {
        Some(b'2') => "positive",
        Some(b'3') => "intermediate",
        Some(b'4') => "transient",
        _ => "permanent",
    }
}

/// An enhanced code's explanation from its parts; `None` when it is in the reference or its
/// subject is not registered (then nothing honest can be said of it).
pub fn enhanced(catalogue: &Catalogue, code: &str, lang: Lang) -> Option<Derived> {
    if catalogue.entry(code).is_some() {
        return None;
    }
    let mut parts = code.split('.');
    let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
    let subject_name = subject_name(subject, lang)?;
    let class_name = class_of(class);
    let same_pair: Vec<&crate::Entry> = ["2", "4", "5"]
        .iter()
        .filter_map(|c| catalogue.entry(&format!("{c}.{subject}.{detail}")))
        .collect();
    if let Some(first) = same_pair.first() {
        let title = registry_title(&first.text(lang).title);
        let registered: Vec<String> = same_pair.iter().map(|e| e.facts.code.clone()).collect();
        let note = unusual(class_name, &registered, lang);
        let meaning = match lang {
            Lang::En => format!(
                "{code} is class {class}, {}, with subject and detail {subject}.{detail}, “{title}”, which the IANA registry lists as {}. The meaning of {subject}.{detail} is the same in every class; the class gives the outcome.{note}",
                crate::explain::labels(lang).class(class_name),
                registered.join(", "),
            ),
            Lang::Id => format!(
                "{code} adalah kelas {class}, {}, dengan subjek dan detail {subject}.{detail}, “{title}”, yang tercantum di registri IANA sebagai {}. Arti {subject}.{detail} sama di setiap kelas; kelasnya menyatakan hasilnya.{note}",
                crate::explain::labels(lang).class(class_name),
                registered.join(", "),
            ),
        };
        return Some(Derived {
            code: code.to_owned(),
            class: class_name,
            title,
            meaning,
            registered,
            is_registered_detail: true,
        });
    }
    let registered: Vec<String> = ["2", "4", "5"]
        .iter()
        .map(|c| format!("{c}.{subject}.0"))
        .filter(|c| catalogue.entry(c).is_some())
        .collect();
    let meaning = match lang {
        Lang::En => format!(
            "{code} is class {class}, {}, subject {subject} ({subject_name}). Detail {detail} is not in the IANA registry: providers and server software add their own detail numbers within a subject, so the text of the reply, or the provider's own documentation, says what it stands for.",
            crate::explain::labels(lang).class(class_name),
        ),
        Lang::Id => format!(
            "{code} adalah kelas {class}, {}, subjek {subject} ({subject_name}). Detail {detail} tidak ada di registri IANA: penyedia layanan dan perangkat lunak server menambahkan nomor detail sendiri di dalam sebuah subjek, jadi teks balasan, atau dokumentasi penyedia itu sendiri, yang menjelaskan artinya.",
            crate::explain::labels(lang).class(class_name),
        ),
    };
    Some(Derived {
        code: code.to_owned(),
        class: class_name,
        title: capitalised(&match lang {
            Lang::En => format!("{subject_name}, detail not in the IANA registry"),
            Lang::Id => format!("{subject_name}, detail di luar registri IANA"),
        }),
        meaning,
        registered,
        is_registered_detail: false,
    })
}

/// A basic code's explanation from its first two digits (RFC 5321 §4.2.1); `None` when it is in
/// the reference or its second digit names no category.
pub fn basic(catalogue: &Catalogue, code: &str, lang: Lang) -> Option<Derived> {
    if catalogue.entry(code).is_some() {
        return None;
    }
    let category = code.as_bytes().get(1).map(|b| b.wrapping_sub(b'0'))?;
    let category_name = category_name(category, lang)?;
    let class_name = class_of(code);
    let class_label = crate::explain::labels(lang).class(class_name);
    let registered: Vec<String> = catalogue
        .entries()
        .map(|e| e.facts.code.clone())
        .filter(|c| c.len() == 3 && c.get(..2) == code.get(..2))
        .collect();
    let meaning = match lang {
        Lang::En => format!(
            "{code} is not defined by an RFC. Its first digit makes it {class_label}, and SMTP clients act on that digit alone; its second digit says it concerns {category_name} (RFC 5321 §4.2.1). The text of the reply says the rest."
        ),
        Lang::Id => format!(
            "{code} tidak didefinisikan oleh RFC mana pun. Digit pertamanya menjadikannya {class_label}, dan klien SMTP bertindak hanya menurut digit itu; digit keduanya menyatakan bahwa balasan ini menyangkut {category_name} (RFC 5321 §4.2.1). Teks balasan menjelaskan selebihnya."
        ),
    };
    Some(Derived {
        code: code.to_owned(),
        class: class_name,
        title: match lang {
            Lang::En => format!("Reply code outside the RFCs, about {category_name}"),
            Lang::Id => format!("Kode balasan di luar RFC, tentang {category_name}"),
        },
        meaning,
        registered,
        is_registered_detail: false,
    })
}

/// The registry's name of a subject (RFC 3463 §3.1-3.8).
fn subject_name(subject: &str, lang: Lang) -> Option<&'static str> {
    let (en, id) = match subject {
        "0" => (
            "other or undefined status",
            "status lain atau tidak terdefinisi",
        ),
        "1" => ("addressing status", "status alamat"),
        "2" => ("mailbox status", "status kotak surat"),
        "3" => ("mail system status", "status sistem surel"),
        "4" => ("network and routing status", "status jaringan dan perutean"),
        "5" => (
            "mail delivery protocol status",
            "status protokol pengiriman surel",
        ),
        "6" => (
            "message content or media status",
            "status isi pesan atau media",
        ),
        "7" => (
            "security or policy status",
            "status keamanan atau kebijakan",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Id => id,
    })
}

/// What the second digit of a basic code is about (RFC 5321 §4.2.1).
fn category_name(digit: u8, lang: Lang) -> Option<&'static str> {
    let (en, id) = match digit {
        0 => ("syntax", "sintaksis"),
        1 => ("information", "informasi"),
        2 => ("the connection", "koneksi"),
        5 => ("the mail system", "sistem surel"),
        _ => return None,
    };
    Some(match lang {
        Lang::En => en,
        Lang::Id => id,
    })
}

/// `text` with its first letter upper-case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// An entry's title without its class in parentheses: the registry's name of the pair.
fn registry_title(title: &str) -> String {
    match title.rfind(" (") {
        Some(index) if title.ends_with(')') => title[..index].to_owned(),
        _ => title.to_owned(),
    }
}

/// A sentence for a class the registry does not list for the pair: what servers mean by it.
fn unusual(class: &str, registered: &[String], lang: Lang) -> String {
    let has = |digit: char| registered.iter().any(|c| c.starts_with(digit));
    match (class, lang) {
        ("positive", Lang::En) if !has('2') => " The registry lists the pair only for failures; with a success class it says which part of the transaction the success concerns, and nothing failed.".to_owned(),
        ("positive", Lang::Id) if !has('2') => " Registri mencantumkan pasangan ini hanya untuk kegagalan; dengan kelas berhasil, kode ini menyatakan bagian transaksi mana yang berhasil, dan tidak ada yang gagal.".to_owned(),
        ("transient" | "permanent", Lang::En) if !has('4') && !has('5') => " The registry lists the pair only for success; with a failure class it names the part of the transaction the failure concerns, and the text of the reply says what went wrong.".to_owned(),
        ("transient" | "permanent", Lang::Id) if !has('4') && !has('5') => " Registri mencantumkan pasangan ini hanya untuk keberhasilan; dengan kelas gagal, kode ini menyebut bagian transaksi yang gagal, dan teks balasan menjelaskan apa yang salah.".to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> &'static Catalogue {
        Catalogue::get().unwrap()
    }

    #[test]
    fn a_registered_pair_in_another_class_keeps_its_meaning() {
        let derived = enhanced(catalogue(), "2.6.0", Lang::En).unwrap();
        assert!(derived.is_registered_detail);
        assert_eq!(derived.class, "positive");
        assert!(derived.registered.contains(&"5.6.0".to_owned()));
        assert!(derived.title.starts_with("Other or undefined media error"));
        assert!(
            derived.meaning.contains("nothing failed"),
            "{}",
            derived.meaning
        );
        let derived = enhanced(catalogue(), "5.1.5", Lang::En).unwrap();
        assert!(derived.registered.contains(&"2.1.5".to_owned()));
        assert!(derived.meaning.contains("only for success"));
    }

    #[test]
    fn a_detail_outside_the_registry_is_said_to_be_so_never_made_up() {
        let derived = enhanced(catalogue(), "5.7.606", Lang::En).unwrap();
        assert!(!derived.is_registered_detail);
        assert!(derived.meaning.contains("not in the IANA registry"));
        assert!(!derived.meaning.contains("made"));
        assert!(derived.registered.contains(&"5.7.0".to_owned()));
        let id = enhanced(catalogue(), "4.7.500", Lang::Id).unwrap();
        assert!(
            id.meaning.contains("tidak ada di registri IANA"),
            "{}",
            id.meaning
        );
    }

    #[test]
    fn known_codes_and_unknown_subjects_are_not_derived() {
        assert!(enhanced(catalogue(), "5.1.10", Lang::En).is_none());
        assert!(enhanced(catalogue(), "5.9.1", Lang::En).is_none());
        assert!(basic(catalogue(), "550", Lang::En).is_none());
        assert!(basic(catalogue(), "571", Lang::En).is_none());
        let derived = basic(catalogue(), "559", Lang::En).unwrap();
        assert_eq!(derived.class, "permanent");
        assert!(derived.meaning.contains("the mail system"));
    }
}
