//! The rules of a new deployment (docs/updates.md): what a request may list, and which images
//! it deploys. Plain functions over the request and the images' rows, unit-tested in place; the
//! route (`routes/deployments.rs`) reads the rows and stores the result.

use std::collections::{BTreeMap, HashMap};

use ferro_wire::{CreateDeploymentRequest, DeployedImage, Image, ImageType, MAX_DEPLOYMENT_IMAGES};

use crate::datastore::images::deployed_image;
use crate::error::{ApiError, ApiResult};
use crate::rollouts::{self, ValidRollout};

/// Check a request before any image is read: at most [`MAX_DEPLOYMENT_IMAGES`] images, a valid
/// rollout if it asks for one, each image listed once (in this order of checks).
pub fn check_request(req: &CreateDeploymentRequest) -> ApiResult<Option<ValidRollout>> {
    if req.image_ids.len() > MAX_DEPLOYMENT_IMAGES {
        return Err(ApiError::invalid_body(format!(
            "`imageIds` may list at most {MAX_DEPLOYMENT_IMAGES} images"
        )));
    }
    let rollout = req.rollout.as_ref().map(rollouts::validate).transpose()?;
    let mut seen = HashMap::new();
    for (i, id) in req.image_ids.iter().enumerate() {
        if let Some(j) = seen.insert(*id, i) {
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{j}]` and `imageIds[{i}]` are the same image; list each image once"
            )));
        }
    }
    Ok(rollout)
}

/// The images a deployment holds, one per component, by component ID.
#[derive(Clone, Debug, Default)]
pub struct ImageChoice {
    /// Component ID -> (image row ID, image).
    by_component: BTreeMap<String, (String, DeployedImage)>,
}

impl ImageChoice {
    /// The deployed images, ordered by component ID.
    pub fn images(&self) -> Vec<DeployedImage> {
        self.by_component.values().map(|(_, i)| i.clone()).collect()
    }

    /// (image row ID, image) of each image, ordered by component ID.
    pub fn rows(&self) -> Vec<(String, DeployedImage)> {
        self.by_component.values().cloned().collect()
    }
}

/// Choose the images of a deployment from the rows of the requested images, in request order
/// (`None`: no such image in the tenant): each must exist, be no OS image (groups get the OS
/// from their feed) and be the only image of its component. The first offence, by index, is
/// the answer (`422 invalid_body`).
pub fn choose_images(requested: &[Option<(String, Image)>]) -> ApiResult<ImageChoice> {
    let mut choice = ImageChoice::default();
    // Component ID -> the index that chose it.
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (i, found) in requested.iter().enumerate() {
        let (row_id, image) = found.as_ref().ok_or_else(|| {
            ApiError::invalid_body(format!(
                "`imageIds[{i}]`: no such image in this tenant; upload it first (`ferro image \
                 add`), and check the ID"
            ))
        })?;
        if image.image_type == ImageType::Os {
            // Never stored as a tenant image; kept as a guard.
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{i}]` is an OS image; device groups get the OS from their OS feed"
            )));
        }
        let component = image.component_id.hyphenated().to_string();
        if let Some(j) = index_of.get(&component) {
            return Err(ApiError::invalid_body(format!(
                "`imageIds[{j}]` and `imageIds[{i}]` are both images of component {component}; a \
                 deployment holds one image per component"
            )));
        }
        index_of.insert(component.clone(), i);
        choice
            .by_component
            .insert(component, (row_id.clone(), deployed_image(image)));
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferro_wire::{ErrorCode, ImageId, RolloutRequest};
    use uuid::Uuid;

    fn image(component: u128, image_type: ImageType) -> Image {
        Image {
            id: ImageId::new(),
            tenant_id: ferro_wire::TenantId::new(),
            component_id: Uuid::from_u128(component),
            name: format!("c{component}"),
            image_type,
            version: "1.0.0".into(),
            security_version: 0,
            target_runtime_version: 0,
            debug: false,
            payload_size: 1,
            payload_sha256: String::new(),
            package_sha256: String::new(),
            package_size: 1,
            test_signed: false,
            signer_key_id: String::new(),
            uploaded_signer_key_id: String::new(),
            uploaded_sha256: String::new(),
            uploaded_by: ferro_wire::UserId::new(),
            uploaded_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    type Requested = Vec<Option<(String, Image)>>;

    fn row(n: u8, i: Image) -> Option<(String, Image)> {
        Some((format!("row{n}"), i))
    }

    #[test]
    fn images_are_chosen_one_per_component_in_component_order() {
        let (a, b) = (image(2, ImageType::App), image(1, ImageType::RtApp));
        let c = choose_images(&[row(0, a.clone()), row(1, b.clone())]).unwrap();
        let images = c.images();
        assert_eq!(
            images.iter().map(|i| i.image_id).collect::<Vec<_>>(),
            vec![b.id, a.id],
            "ordered by component"
        );
        assert_eq!(
            c.rows(),
            vec![
                ("row1".to_string(), deployed_image(&b)),
                ("row0".to_string(), deployed_image(&a))
            ]
        );
        assert!(choose_images(&[]).unwrap().images().is_empty());
    }

    #[test]
    fn bad_image_lists_are_refused_naming_the_index() {
        let app = |c| image(c, ImageType::App);
        // (requested, the message names, why)
        let cases: Vec<(Requested, &str, &str)> = vec![
            (
                vec![row(0, app(1)), None],
                "`imageIds[1]`: no such image",
                "unknown",
            ),
            (
                vec![row(0, image(1, ImageType::Os))],
                "`imageIds[0]` is an OS image",
                "OS",
            ),
            (
                vec![row(0, app(1)), row(1, app(2)), row(2, app(1))],
                "`imageIds[0]` and `imageIds[2]` are both images of component",
                "two of one component",
            ),
            (
                vec![None, row(1, image(1, ImageType::Os))],
                "`imageIds[0]`: no such image",
                "the first offence answers",
            ),
        ];
        for (requested, names, why) in cases {
            let e = choose_images(&requested).expect_err(why);
            assert_eq!(e.code(), ErrorCode::InvalidBody, "{why}");
            assert!(e.to_string().contains(names), "{why}: {e}");
        }
    }

    #[test]
    fn requests_are_checked_before_any_image_is_read() {
        let id = ImageId::new();
        let req = |ids: Vec<ImageId>, rollout: Option<RolloutRequest>| CreateDeploymentRequest {
            image_ids: ids,
            rollout,
        };
        assert_eq!(check_request(&req(vec![id], None)).unwrap(), None);
        let bad_rollout = RolloutRequest {
            waves: vec![50.0],
            wave_wait_seconds: 0,
            max_failure_percent: 0.0,
        };
        // (request, code, why)
        let cases = [
            (
                req(vec![ImageId::new(); MAX_DEPLOYMENT_IMAGES + 1], None),
                ErrorCode::InvalidBody,
                "too many",
            ),
            (
                req(vec![id, id], None),
                ErrorCode::InvalidBody,
                "the same image twice",
            ),
            (
                req(vec![id, id], Some(bad_rollout)),
                ErrorCode::InvalidRollout,
                "the rollout is checked before duplicates",
            ),
        ];
        for (r, code, why) in cases {
            assert_eq!(check_request(&r).expect_err(why).code(), code, "{why}");
        }
    }
}
