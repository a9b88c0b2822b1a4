//! The attachments `GET /files/{name}` serves: one-pixel JPEG and PNG images and a one-page
//! PDF, each valid and each embedding the file name (a JPEG comment, a PNG `tEXt` chunk, the
//! PDF's text), so that different names have different bytes and content hashes.

/// A 1×1 grey baseline JPEG: one 8×8 block whose only coefficient is DC 0, coded with one-code
/// Huffman tables (DC category 0 → `0`, AC end-of-block → `0`), so the scan is the bits `00`
/// padded with ones: `0x3F`.
pub(crate) fn jpeg(name: &str) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8]; // SOI
    b.extend_from_slice(&[
        0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00,
    ]); // APP0 JFIF 1.1, no density unit, 1:1, no thumbnail
    let comment = name.as_bytes();
    b.extend_from_slice(&[0xFF, 0xFE]);
    b.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    b.extend_from_slice(comment); // COM
    b.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    b.extend_from_slice(&[1u8; 64]); // DQT: table 0, all ones
    b.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
    ]); // SOF0: 8-bit, 1×1, one component (id 1, 1×1 sampling, table 0)
    for class in [0x00u8, 0x10] {
        b.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 0x01]);
        b.extend_from_slice(&[0u8; 15]);
        b.push(0x00); // DHT: one code of length 1 for symbol 0
    }
    b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]); // SOS
    b.push(0x3F); // the scan
    b.extend_from_slice(&[0xFF, 0xD9]); // EOI
    b
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A 1×1 8-bit greyscale PNG; the pixel data is one stored (uncompressed) deflate block.
pub(crate) fn png(name: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&1u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png_chunk(&mut b, b"IHDR", &ihdr);
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(name.as_bytes());
    png_chunk(&mut b, b"tEXt", &text);
    let raw = [0u8, 0x80]; // filter "none", one grey pixel
    let mut z = vec![0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF];
    z.extend_from_slice(&raw);
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    png_chunk(&mut b, b"IDAT", &z);
    png_chunk(&mut b, b"IEND", &[]);
    b
}

/// A one-page PDF 1.4 showing the name, with a correct cross-reference table.
pub(crate) fn pdf(name: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 10 50 Td ({name}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        tail.push_str(&format!("{off:010} 00000 n \n"));
    }
    tail.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    out.extend_from_slice(tail.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_adler_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn files_have_magic_numbers_and_differ_by_name() {
        assert!(jpeg("a.jpg").starts_with(&[0xFF, 0xD8, 0xFF]));
        assert!(jpeg("a.jpg").ends_with(&[0xFF, 0xD9]));
        assert!(png("a.png").starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(png("a.png").ends_with(&[0xAE, 0x42, 0x60, 0x82]));
        assert!(pdf("a.pdf").starts_with(b"%PDF-1.4"));
        assert!(pdf("a.pdf").ends_with(b"%%EOF\n"));
        assert_ne!(jpeg("a.jpg"), jpeg("b.jpg"));
        assert_ne!(png("a.png"), png("b.png"));
    }
}
